"""A step's ``run:``: its container through ``containers.run_in_container``, with the options
buildrunner users expect (cwd, user, hostname, dns, extra hosts, files, ports, volumes_from,
resource limits), services given as a mapping (built first when they have a ``build``), run
caches restored before and saved after, artifacts collected into the results directory,
and the container's end state committed (``commit:``/``push:``/``post-build``)."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_toolkit.containers.options import ContainerOptions
from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.pipeline import artifacts as collect
from ci_toolkit.pipeline import images
from ci_toolkit.pipeline.model import Pipeline, inline_dockerfile

if TYPE_CHECKING:
    from ci_toolkit.app import App
    from ci_toolkit.build import BuildRequest
    from ci_toolkit.containers.services import ServiceSpec
    from ci_toolkit.pipeline.plan import Options, PlannedStep


@dataclass(frozen=True, kw_only=True)
class RunContext:
    pipeline: Pipeline
    options: Options
    app: App
    results_dir: Path


def run_step(ctx: RunContext, planned: PlannedStep, built: str, stack: ExitStack) -> dict[str, Any]:
    """Run the step's container; returns the artifacts it collected (name -> properties)."""
    from ci_toolkit.containers.run import RunRequest, run_in_container
    from ci_toolkit.pipeline import run_caches

    spec, name, app = planned.run, planned.step.name, ctx.app
    caches = run_caches.open_caches(_cache_root(app), ctx.options.project, name, spec.get("caches", {}))
    stack.callback(run_caches.close_caches, caches)
    commit_to = ""
    if planned.local_tags or planned.push_after_run or "post-build" in spec:
        commit_to = f"ci-toolkit-pipeline/{ctx.options.project}/{name}-run:{ctx.options.build_tag}"
    request = RunRequest(
        image=str(spec.get("image") or built),
        command=_command(spec),
        services=tuple(_services(ctx, name, spec.get("services", []), stack)),
        env={k: str(v) for k, v in spec.get("env", {}).items()},
        workdir=str(ctx.pipeline.project_dir / str(spec.get("workdir", "."))),
        pull_policy=str(spec.get("pull-policy", app.settings.pull_policy)),
        timeout=float(spec["timeout"]) if "timeout" in spec else None,
        step=name,
        mount_point=str(spec.get("mount", "/workspace")),
        options=_options(spec),
        ports={str(k): v for k, v in spec.get("ports", {}).items()},
        volumes_from=tuple(spec.get("volumes-from", ())),
        binds=(*_files(ctx, spec.get("files", {}), stack), *_results_bind(ctx)),
        restore={c.path: str(c.restore) for c in caches if c.restore is not None},
        save={c.path: str(c.save) for c in caches},
        commit_to=commit_to,
        home=app.env.get("HOME", ""),
    )
    if app.dry_run:
        app.reporter.info(f"step {name}: would run {request.image} {' '.join(request.command)}")
        return {}
    code = run_in_container(
        request, settings=app.settings, ci=app.ci, reporter=app.reporter, cwd=ctx.pipeline.project_dir
    )
    _check_exit(code, bool(spec.get("xfail", False)))
    if code != 0:
        return {}  # an expected failure: nothing to keep from it
    run_caches.commit_caches(caches, app.reporter)
    found = collect.collect(
        spec.get("artifacts", {}), Path(request.workdir), request.mount_point, ctx.results_dir, name
    )
    if commit_to:
        _finish_image(ctx, planned, commit_to, spec.get("post-build"))
    return found


def _check_exit(code: int, xfail: bool) -> None:
    if xfail and code == 0:
        raise ToolkitError.failed("the run command succeeded but xfail says it must fail")
    if not xfail and code != 0:
        raise ToolkitError.failed(f"the run command exited with {code}")


def _cache_root(app: App) -> Path:
    from ci_toolkit.cache.backends import resolve_root

    return resolve_root(app.settings.cache_root, app.env, app.cwd)


def _command(spec: Mapping[str, Any]) -> tuple[str, ...]:
    shell = str(spec.get("shell", "sh"))
    if "cmds" in spec:
        return (shell, "-c", "set -e\n" + "\n".join(str(c) for c in spec["cmds"]))
    if "cmd" in spec:
        return (shell, "-c", str(spec["cmd"]))
    return ()


def _options(spec: Mapping[str, Any]) -> ContainerOptions:
    def strings(key: str) -> tuple[str, ...]:
        return tuple(str(v) for v in spec.get(key, ()))

    return ContainerOptions(
        user=str(spec.get("user", "")),
        working_dir=str(spec.get("cwd", "")),
        hostname=str(spec.get("hostname", "")),
        dns=strings("dns"),
        dns_search=strings("dns-search"),
        extra_hosts={str(k): str(v) for k, v in spec.get("extra-hosts", {}).items()},
        mem_limit=spec.get("mem-limit", ""),
        cpu_shares=int(spec.get("cpu-shares", 0)),
        cpu_period=int(spec.get("cpu-period", 0)),
        cpu_quota=int(spec.get("cpu-quota", 0)),
        platform=str(spec.get("platform", "")),
    )


def _files(ctx: RunContext, files: Mapping[str, str], stack: ExitStack) -> list[str]:
    """``files:`` -> binds: a local-files alias (a host path, or the file's content) or a
    path in the project directory; read-only unless the destination ends in ``:rw``."""
    binds = []
    for source, target in files.items():
        dest, _, mode = str(target).partition(":")
        if mode not in ("", "ro", "rw") or not dest.startswith("/"):
            raise ToolkitError.bad_input(f"run.files: {source}: expected /container/path[:rw], got {target!r}")
        binds.append(f"{_file_source(ctx, str(source), stack)}:{dest}:{mode or 'ro'}")
    return binds


def _file_source(ctx: RunContext, source: str, stack: ExitStack) -> Path:
    alias = ctx.pipeline.local_files.get(source)
    if alias is None:
        return images.inside(ctx.pipeline.project_dir, source, what="run.files")
    if "\n" in alias or not Path(alias).expanduser().exists():
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ci-toolkit-files-")))
        (tmp / "content").write_text(alias, encoding="utf-8")
        return tmp / "content"
    path = Path(alias).expanduser().resolve()
    home = ctx.app.env.get("HOME")
    if path == Path("/") or (home and path == Path(home).resolve()):
        raise ToolkitError.bad_input(f"local-files {source}: refusing to mount {path} (a file or a directory in it)")
    return path


def _results_bind(ctx: RunContext) -> list[str]:
    """buildrunner's ``/artifacts``: earlier steps' artifacts, read-only."""
    if ctx.pipeline.flavor != "buildrunner":
        return []
    ctx.results_dir.mkdir(parents=True, exist_ok=True)
    return [f"{ctx.results_dir}:/artifacts:ro"]


def _services(ctx: RunContext, step: str, services: Any, stack: ExitStack) -> list[ServiceSpec]:
    from ci_toolkit.containers.services import ServiceSpec, service_list

    if isinstance(services, list):
        return service_list(services, f"step {step}: services")
    found = []
    for name, spec in services.items():
        image = str(spec.get("image", ""))
        if "build" in spec:
            image = f"ci-toolkit-pipeline/{ctx.options.project}/{step}-{name}:{ctx.options.build_tag}"
            build_local(ctx, spec["build"], image, f"{ctx.options.project}-{step}-{name}")
        found.append(
            ServiceSpec(
                image=image,
                alias=str(name),
                command=_command(spec) or None,
                variables={k: str(v) for k, v in spec.get("env", {}).items()},
                pull_policy=str(spec.get("pull-policy", "")),
                wait_for=tuple(_wait(w)[0] for w in spec.get("wait-for", ())),
                wait=bool(spec.get("wait-for")),
                wait_timeout=max((t for _, t in map(_wait, spec.get("wait-for", ())) if t), default=None),
                options=_options(spec),
                binds=tuple(_files(ctx, spec.get("files", {}), stack)),
                volumes_from=tuple(spec.get("volumes-from", ())),
            )
        )
    return found


def _wait(item: Any) -> tuple[int, float | None]:
    if isinstance(item, dict):
        return int(item["port"]), (float(item["timeout"]) if "timeout" in item else None)
    return int(item), None


def build_local(ctx: RunContext, build: Mapping[str, Any], tag: str, cache_key: str, base: str = "") -> None:
    """Build an image into the engine only (a service's ``build``, ``post-build``); ``base``
    is prepended as ``FROM base``, as buildrunner does for post-build."""
    from ci_toolkit.build import run_build
    from ci_toolkit.pipeline.host import StepHost

    request = local_request(build, tag, cache_key, ctx.pipeline.project_dir, base)
    host = StepHost(ctx.app, ctx.pipeline.project_dir)
    if "inject" not in build:
        run_build(request, host)
        return
    with images.injected_context(build, ctx.pipeline.project_dir) as context:
        from dataclasses import replace

        run_build(replace(request, context=context), host)


def local_request(build: Mapping[str, Any], tag: str, cache_key: str, project_dir: Path, base: str) -> BuildRequest:
    from ci_toolkit.build import BuildRequest

    inline = inline_dockerfile(build)
    if base:
        inline = f"FROM {base}\n{_post_build_text(build, project_dir)}"
    return BuildRequest(
        context=str(build.get("path", ".")),
        dockerfile="" if inline is not None else str(build.get("dockerfile", "")),
        dockerfile_text=inline,
        target=str(build.get("target", "")),
        tags=(tag,),
        load=True,
        build_args={k: str(v) for k, v in build.get("build-args", {}).items()},
        cache_key=cache_key,
        no_cache=bool(build.get("no-cache", False)),
        pull=bool(build.get("pull", False)),
    )


def _post_build_text(build: Mapping[str, Any], project_dir: Path) -> str:
    """post-build's Dockerfile: inline text (one line too: ``CMD x``), else the file."""
    given = build.get("dockerfile")
    name = str(given or Path(build.get("path", ".")) / "Dockerfile")
    path = images.inside(project_dir, name, what="post-build")
    if given and not path.is_file():
        return str(given)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ToolkitError.bad_input(f"post-build: cannot read {name}: {exc.strerror or exc}") from exc


def _finish_image(ctx: RunContext, planned: PlannedStep, committed: str, post_build: Any) -> None:
    image = committed
    if post_build is not None:
        image = committed.replace("-run:", "-post:")
        build_local(ctx, post_build, image, f"{ctx.options.project}-{planned.step.name}-post", base=committed)
    images.tag_locally(image, (*planned.local_tags, *planned.push_after_run), ctx.app)
    images.push(planned.push_after_run, ctx.app)
    ctx.app.reporter.info(f"step {planned.step.name}: committed the run container as {image}")
