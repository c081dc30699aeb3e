"""Run one command in a container next to its services, on a network of its own, with every
container, network and volume labelled and removed again on every way out.

The one public entry is ``run_in_container(RunRequest, ...) -> exit code``; the ``run``
command and pipeline ``run:`` steps both call it. The request is a frozen dataclass and only
grows new fields with defaults."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ci_toolkit.containers import archive, cleanup, labels, services
from ci_toolkit.containers.options import ContainerOptions, create_kwargs, host_config_kwargs, port_bindings
from ci_toolkit.containers.services import ServiceSpec
from ci_toolkit.core import refs
from ci_toolkit.core.ci import CIContext
from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.report import Reporter
from ci_toolkit.core.settings import Settings

PULL_POLICIES = services.PULL_POLICIES
MOUNT_POINT = "/workspace"


@dataclass(frozen=True, kw_only=True)
class RunRequest:
    """One command to run. ``env`` goes to the build container and to every service;
    ``secret_env`` only to the build container (and is masked in our output);
    ``service_env`` only to services. ``workdir`` is the host directory mounted at
    ``/workspace`` (default: the current directory). Volumes are ``SRC:DST[:ro|rw]``: SRC an
    absolute or ``./`` path for a bind mount, else a named volume the user owns."""

    image: str
    command: tuple[str, ...] = ()
    services: tuple[ServiceSpec, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: Mapping[str, str] = field(default_factory=dict)
    service_env: Mapping[str, str] = field(default_factory=dict)
    volumes: tuple[str, ...] = ()
    tmpfs: Mapping[str, str] = field(default_factory=dict)
    services_tmpfs: Mapping[str, str] = field(default_factory=dict)
    workdir: str = ""
    pull_policy: str = "if-not-present"
    timeout: float | None = None
    service_timeout: float = 60.0
    step: str = ""
    home: str = ""
    """The job's home directory: never mounted, nor ``/``, nor a directory above either."""
    mount_point: str = MOUNT_POINT
    """Where ``workdir`` is mounted (buildrunner: ``/source``); the default working directory."""
    options: ContainerOptions = field(default_factory=ContainerOptions)
    ports: Mapping[str, str | int | None] = field(default_factory=dict)
    """Published on the host: container port -> host port (None: any free one)."""
    volumes_from: tuple[str, ...] = ()
    """Service names (aliases) whose volumes the command's container mounts."""
    binds: tuple[str, ...] = ()
    """Resolved ``SRC:DST:MODE`` bind mounts made by the caller (files, results)."""
    restore: Mapping[str, str] = field(default_factory=dict)
    """Container directory -> host tar file unpacked into it before the command starts."""
    save: Mapping[str, str] = field(default_factory=dict)
    """Container directory -> host tar file it is written to after the command succeeded."""
    commit_to: str = ""
    """After success, the container's end state becomes this image (``docker commit``)."""


def label_context_for(settings: Settings, ci: CIContext) -> labels.LabelContext:
    return labels.label_context(
        prefix=settings.label_prefix,
        job_id=settings.job_id or ci.job_id,
        ci=ci.provider,
        run_id=ci.run_id,
        user_labels=settings.container_labels,
    )


def run_in_container(request: RunRequest, *, settings: Settings, ci: CIContext, reporter: Reporter, cwd: Path) -> int:
    """Start the services, wait for their ports, run the command; return its exit code."""
    check_request(request)
    _check_mounts(request, cwd)
    ctx = label_context_for(settings, ci)
    for value in request.secret_env.values():
        reporter.add_secret(value)
    client = connect()
    with cleanup.engine_errors(f"run {request.image}"), cleanup.Session(reporter, prefix=ctx.prefix) as session:
        return _Run(client, request, ctx, session, reporter, cwd, settings).execute()


def connect() -> Any:
    import docker

    try:
        client = cleanup.engine_client()
        client.ping()
    except docker.errors.DockerException as exc:
        raise ToolkitError.missing(f"cannot reach the Docker engine ({exc}): start it or set DOCKER_HOST") from exc
    return client


def check_request(request: RunRequest) -> None:
    """Everything about a request that can be judged without the engine (also in dry-run)."""
    if not request.image.strip():
        raise ToolkitError.bad_input("run: an image is required")
    for image in (request.image, *(s.image for s in request.services)):
        refs.parse_reference(image)
    if request.pull_policy not in PULL_POLICIES:
        raise ToolkitError.bad_input(
            f"pull policy must be one of {', '.join(PULL_POLICIES)}, got {request.pull_policy!r}"
        )
    for volume in request.volumes:
        _parse_volume(volume, Path("/"))
    for path in [*request.tmpfs, *request.services_tmpfs]:
        if not path.startswith("/"):
            raise ToolkitError.bad_input(f"tmpfs path {path!r} must be absolute")


def _workdir(request: RunRequest, cwd: Path) -> Path:
    workdir = Path(request.workdir).expanduser() if request.workdir else cwd
    return (cwd / workdir).resolve()


def _check_mounts(request: RunRequest, cwd: Path) -> None:
    """A container that mounts ``/`` or the home directory read-write can change anything on
    the runner (or read every credential under ~): refused, whoever asked."""
    home = Path(request.home).resolve() if request.home else None
    protected = {Path("/"), *((home, *home.parents) if home else ())}
    mounts = [("workdir", _workdir(request, cwd))]
    for volume in request.volumes:
        source = _parse_volume(volume, cwd)[0]
        if source.startswith("/"):
            mounts.append((f"volume {volume}", Path(source)))
    for bind in [*request.binds, *(b for s in request.services for b in s.binds)]:
        mounts.append((f"file {bind}", Path(bind.split(":")[0]).resolve()))
    for what, path in mounts:
        if path in protected:
            raise ToolkitError.bad_input(
                f"run: {what} would mount {path} (the host's root or home directory) into the container; "
                "mount a directory inside the project instead"
            )


def _parse_volume(spec: str, cwd: Path) -> tuple[str, str, str]:
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/"):
        raise ToolkitError.bad_input(f"--volume expects SRC:DST[:ro|rw] with an absolute DST, got {spec!r}")
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw"):
        raise ToolkitError.bad_input(f"--volume mode must be ro or rw, got {mode!r} in {spec!r}")
    source = parts[0]
    if source.startswith((".", "/", "~")):
        try:
            source = str((cwd / Path(source).expanduser()).resolve())
        except RuntimeError as exc:  # ~user that does not exist, or a symlink loop
            raise ToolkitError.bad_input(f"--volume {spec!r}: {exc}") from exc
    return source, parts[1], mode


class _Run:
    def __init__(
        self,
        client: Any,
        request: RunRequest,
        ctx: labels.LabelContext,
        session: cleanup.Session,
        reporter: Reporter,
        cwd: Path,
        settings: Settings,
    ) -> None:
        self.api = client.api
        self.request = request
        self.ctx = ctx
        self.session = session
        self.reporter = reporter
        self.cwd = cwd
        self.settings = settings
        self.network = ""
        self.service_names: dict[str, str] = {}

    def labels(self, role: str) -> dict[str, str]:
        return self.ctx.labels(role=role, step=self.request.step)

    def execute(self) -> int:
        self.network = self.session.name("net")
        self.session.networks.append(self.network)
        self.api.create_network(self.network, driver="bridge", labels=self.labels("run"))
        policies = {self.request.image: self.request.pull_policy}
        for spec in self.request.services:
            policies.setdefault(spec.image, spec.pull_policy or self.request.pull_policy)
        for image, policy in policies.items():
            self._ensure_image(image, policy)
        started = []
        for spec in self.request.services:
            # In order: a later service may use an earlier one's volumes or address.
            self._check_known(spec.volumes_from)
            started.append(self._start_service(spec))
        for spec, container in zip(self.request.services, started, strict=True):
            self._wait_ready(spec, container)
        self._check_known(self.request.volumes_from)
        return self._run_command()

    def _check_known(self, names: tuple[str, ...]) -> None:
        for name in names:
            if name not in self.service_names:
                raise ToolkitError.bad_input(f"volumes_from: no service {name!r} started before it")

    def _address(self, target: str) -> str:
        """An extra_hosts target: a service's address on the network, else as given."""
        container = self.service_names.get(target)
        if container is None:
            return target
        networks = (self.api.inspect_container(container).get("NetworkSettings") or {}).get("Networks") or {}
        return str((networks.get(self.network) or {}).get("IPAddress", "")) or target

    # -- images ---------------------------------------------------------------------------

    def _ensure_image(self, image: str, policy: str) -> None:
        import docker.errors

        if policy != "always":
            try:
                self.api.inspect_image(image)
                return
            except docker.errors.ImageNotFound:
                if policy == "never":
                    raise ToolkitError.missing(
                        f"image {image} is not present and pull-policy is never: pull it first"
                    ) from None
        self._pull(image)

    def _pull(self, image: str) -> None:
        import docker.errors

        source = _pull_reference(image, self.settings, self.reporter)
        self.reporter.info(f"pulling {source}")
        try:
            for event in self.api.pull(source, stream=True, decode=True):
                if "error" in event:
                    raise ToolkitError.failed(f"pull {source} failed: {event['error']}")
            if source != image and "@" not in image:
                # Pulled from a mirror: give it the name the user asked for.
                self.api.tag(source, *_split_tag(image))
        except docker.errors.APIError as exc:
            raise ToolkitError.failed(f"pull {source} failed: {exc.explanation or exc}") from exc

    def _image_volumes(self, image: str, taken: set[str], role: str) -> list[str]:
        """The image's VOLUME paths as labelled volumes of ours: anonymous volumes carry no
        labels, so a killed job's would be invisible to the sweep and pile up for ever."""
        declared = (self.api.inspect_image(image).get("Config") or {}).get("Volumes") or {}
        binds = []
        for path in sorted(declared):
            if path in taken:
                continue
            name = self.session.name("vol")
            self.session.volumes.append(name)
            self.api.create_volume(name=name, labels=self.labels(role))
            binds.append(f"{name}:{path}:rw")
        return binds

    # -- services -------------------------------------------------------------------------

    def _start_service(self, spec: ServiceSpec) -> str:
        aliases = services.service_aliases(spec)
        name = self.session.name("svc")
        self.session.containers.append(name)
        taken = {*self.request.services_tmpfs, *(b.split(":")[1] for b in spec.binds)}
        binds = [*spec.binds, *self._image_volumes(spec.image, taken, "service")]
        host_config = self.api.create_host_config(
            binds=binds,
            tmpfs=dict(self.request.services_tmpfs) or None,
            network_mode=self.network,
            volumes_from=[self.service_names[s] for s in spec.volumes_from] or None,
            **host_config_kwargs(spec.options, self._address),
        )
        networking = self.api.create_networking_config({self.network: self.api.create_endpoint_config(aliases=aliases)})
        self.api.create_container(
            spec.image,
            name=name,
            entrypoint=list(spec.entrypoint) if spec.entrypoint is not None else None,
            command=list(spec.command) if spec.command is not None else None,
            environment={**self.request.env, **self.request.service_env, **spec.variables},
            labels=self.labels("service"),
            host_config=host_config,
            networking_config=networking,
            **create_kwargs(spec.options),
        )
        _start(self.api, name, f"service {spec.image}")
        for alias in aliases:
            self.service_names.setdefault(alias, name)
        self.reporter.info(f"service {spec.image} started as {', '.join(aliases)}")
        return name

    def _wait_ready(self, spec: ServiceSpec, container: str) -> None:
        info = self.api.inspect_container(container)
        first = services.first_tcp_port((info.get("Config") or {}).get("ExposedPorts"))
        ports = spec.wait_for or ((first,) if first is not None and spec.wait else ())
        label = f"{spec.image}" + (f" ({spec.alias})" if spec.alias else "")
        if not spec.wait and not spec.wait_for:
            return
        if not ports:
            self.reporter.info(f"service {label} exposes no TCP port: not waiting for it")
            return
        networks = (info.get("NetworkSettings") or {}).get("Networks") or {}
        address = (networks.get(self.network) or {}).get("IPAddress", "")
        if not address:
            raise ToolkitError.failed(f"service {label} has no address on network {self.network}")

        def still_running() -> bool:
            state = self.api.inspect_container(container).get("State") or {}
            return bool(state.get("Running"))

        for port in ports:
            services.wait_for_port(
                address,
                port,
                timeout=spec.wait_timeout or self.request.service_timeout,
                still_running=still_running,
                name=label,
            )
            self.reporter.info(f"service {label} is accepting connections on port {port}")

    # -- the command ----------------------------------------------------------------------

    def _run_command(self) -> int:
        request = self.request
        name = self.session.name("run")
        self.session.containers.append(name)
        exposed, published = port_bindings(request.ports)
        working_dir = request.options.working_dir or request.mount_point
        self.api.create_container(
            request.image,
            command=list(request.command) or None,
            name=name,
            environment={**request.env, **request.secret_env},
            labels=self.labels("run"),
            ports=exposed or None,
            host_config=self.api.create_host_config(
                binds=self._command_binds(),
                tmpfs=dict(request.tmpfs) or None,
                network_mode=self.network,
                port_bindings=published or None,
                volumes_from=[self.service_names[s] for s in request.volumes_from] or None,
                **host_config_kwargs(request.options, self._address),
            ),
            **create_kwargs(replace(request.options, working_dir=working_dir)),
        )
        for path, tar in request.restore.items():
            archive.restore(self.api, name, path, Path(tar))
        status = self._attach_and_wait(name)
        if status == 0:
            for path, tar in request.save.items():
                archive.save(self.api, name, path, Path(tar))
            if request.commit_to:
                repository, tag = _split_tag(request.commit_to)
                self.api.commit(name, repository=repository, tag=tag)
        return status

    def _command_binds(self) -> list[str]:
        request = self.request
        workdir = _workdir(request, self.cwd)
        if not workdir.is_dir():
            raise ToolkitError.bad_input(f"working directory {workdir} does not exist")
        user_binds = [":".join(_parse_volume(v, self.cwd)) for v in request.volumes]
        own = [*user_binds, *request.binds]
        taken = {request.mount_point, *request.tmpfs, *(b.split(":")[1] for b in own)}
        return [f"{workdir}:{request.mount_point}:rw", *own, *self._image_volumes(request.image, taken, "run")]

    def _attach_and_wait(self, name: str) -> int:
        request = self.request
        # Attach before start, as `docker run` does: output written before a later attach
        # would be lost when the log driver cannot replay it.
        output = self.api.attach(name, stdout=True, stderr=True, stream=True, logs=True, demux=True)
        try:
            _start(self.api, name, "the command")
        except ToolkitError:
            with contextlib.suppress(Exception):
                output.close()
            raise
        timed_out = threading.Event()
        timer = None
        if request.timeout:
            timer = threading.Timer(request.timeout, self._kill_on_timeout, args=(name, timed_out))
            timer.daemon = True
            timer.start()
        try:
            self._stream_output(output)
            status = int(self.api.wait(name).get("StatusCode", 1))
        finally:
            if timer is not None:
                timer.cancel()
        if timed_out.is_set():
            raise ToolkitError.failed(f"command timed out after {request.timeout:g}s")
        return status

    def _kill_on_timeout(self, name: str, flag: threading.Event) -> None:
        flag.set()
        # It may have exited on its own just now; then there is nothing to kill.
        with contextlib.suppress(Exception):
            self.api.kill(name)

    def _stream_output(self, output: Iterator[tuple[bytes | None, bytes | None]]) -> None:
        out = _LineMasker(self.reporter, to_stdout=not self.reporter.json_mode)
        err = _LineMasker(self.reporter, to_stdout=False)
        for stdout, stderr in output:
            if stdout:
                out.feed(stdout)
            if stderr:
                err.feed(stderr)
        out.flush()
        err.flush()


class _LineMasker:
    """Masks secrets line by line, so a secret split across two reads is still caught."""

    def __init__(self, reporter: Reporter, *, to_stdout: bool) -> None:
        self.reporter = reporter
        self.to_stdout = to_stdout
        self.pending = ""

    def feed(self, data: bytes) -> None:
        text = self.pending + data.decode("utf-8", errors="replace")
        lines = text.split("\n")
        self.pending = lines.pop()
        for line in lines:
            self._emit(line + "\n")

    def flush(self) -> None:
        if self.pending:
            self._emit(self.pending)
            self.pending = ""

    def _emit(self, text: str) -> None:
        if self.to_stdout:
            stream = self.reporter.stdout or sys.stdout
            stream.write(self.reporter.masker(text))
            stream.flush()
        else:
            self.reporter.passthrough(text)


def _start(api: Any, name: str, what: str) -> None:
    """Start a created container; a command the runtime cannot exec exits as ``docker run``
    does: 127 when it is not found, 126 when it cannot be executed, with the engine's reason."""
    import docker.errors

    try:
        api.start(name)
    except docker.errors.APIError as exc:
        text = " ".join(str(exc.explanation or exc).split())
        reason = text[text.find("exec: ") :] if "exec: " in text else text
        reason = reason.removesuffix(": unknown")
        lowered = text.lower()
        if "executable file not found" in lowered or "no such file or directory" in lowered:
            raise ToolkitError(f"cannot start {what}: {reason}", 127) from exc
        if any(w in lowered for w in ("permission denied", "is a directory", "exec format error", "not a directory")):
            raise ToolkitError(f"cannot start {what}: {reason}", 126) from exc
        raise ToolkitError.failed(f"cannot start {what}: {reason}") from exc


def _pull_reference(image: str, settings: Settings, reporter: Reporter) -> str:
    """The reference to pull: through the mirror module (issue 4) when it is installed."""
    import importlib

    try:
        mirror = importlib.import_module("ci_toolkit.mirror.resolve")
    except ImportError:
        return image
    rewrite = getattr(mirror, "pull_reference", None)
    return str(rewrite(image, settings, reporter)) if callable(rewrite) else image


def _split_tag(image: str) -> tuple[str, str]:
    name, sep, tag = image.rpartition(":")
    if sep and "/" not in tag:
        return name, tag
    return image, "latest"
