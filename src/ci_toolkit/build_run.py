"""Execution of one build: request -> checks -> cache plan -> buildx -> metadata -> commit."""

from __future__ import annotations

import dataclasses
import json
import re
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_toolkit import build_args, cache_store, proc
from ci_toolkit.cache import CachePlan, default_cache_root, local_args, plan_cache
from ci_toolkit.cache_keys import derive_key, validate_key
from ci_toolkit.errors import EXIT_ENVIRONMENT, ToolkitError
from ci_toolkit.extra_args import expand
from ci_toolkit.mirror import explain_rate_limit
from ci_toolkit.report import Reporter

if TYPE_CHECKING:
    from ci_toolkit.build import BuildHost, BuildRequest, BuildResult

_STEP = re.compile(r"^#(\d+) (\[(?:[^\]]* )?\d+/\d+\] .*)$")
_CACHED = re.compile(r"^#(\d+) CACHED\s*$")
_ERROR = re.compile(r"^#(\d+) ERROR: (.*)$")
_LOG = re.compile(r"^#(\d+) \d+\.\d+ (.*)$")


@dataclasses.dataclass
class _Tally(Reporter):
    """The caller's reporter that also reads buildx's plain progress as it streams by."""

    steps: dict[str, str] = dataclasses.field(default_factory=dict)
    cached: set[str] = dataclasses.field(default_factory=set)
    logs: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    errors: dict[str, str] = dataclasses.field(default_factory=dict)

    def passthrough(self, text: str) -> None:
        super().passthrough(text)
        line = text.rstrip("\n")
        if m := _STEP.match(line):
            self.steps.setdefault(m.group(1), m.group(2))
        elif m := _CACHED.match(line):
            self.cached.add(m.group(1))
        elif m := _ERROR.match(line):
            self.errors.setdefault(m.group(1), m.group(2))
        elif m := _LOG.match(line):
            log = self.logs.setdefault(m.group(1), [])
            log.append(m.group(2))
            del log[:-20]


def execute(request: BuildRequest, host: BuildHost) -> BuildResult:
    from ci_toolkit.build import BuildResult

    started = time.monotonic()
    settings, env, cwd = host.settings, host.env, host.cwd
    if request.push and request.load:
        raise ToolkitError.bad_input("--push and --load exclude each other")
    if request.dockerfile and request.dockerfile_text is not None:
        raise ToolkitError.bad_input("give a Dockerfile path or inline Dockerfile text, not both")
    platforms = build_args.check_platforms(request.platforms)
    tags = tuple(build_args.check_tag(t) for t in request.tags)
    build_args.check_names(request.build_args, request.labels, request.build_contexts)
    context, dockerfile = build_args.resolve_paths(
        request.context, request.dockerfile, request.dockerfile_text is not None, cwd
    )
    extra = request.extra_args
    if extra is None:
        var = settings.extra_args_env
        extra = tuple(expand(env.get(var, ""), env, source=var)) if var else ()
    key = derive_key(
        explicit=request.cache_key,
        env=env,
        tags=tags,
        target=request.target,
        platforms=platforms,
        context_name=Path(context).name,
    )
    plan = plan_cache(
        backend=request.cache_backend or settings.cache_backend,
        key=key,
        root=_cache_root(request.cache_root or settings.cache_root, env, cwd),
        ref=request.cache_ref or settings.cache_ref,
        extra_args=extra,
        cwd=cwd,
    )
    if plan.notice:
        host.reporter.info(f"notice: {plan.notice}")
    for name in build_args.secret_env_names(request.secrets):
        if env.get(name):
            host.reporter.add_secret(env[name])
    labels = {**build_args.toolkit_labels(host.ci, env, settings), **request.labels}
    all_args = {**build_args.docker_registry_arg(settings, request.build_args, host.reporter), **request.build_args}

    session = _open(plan, host.dry_run)
    tally = _Tally(**{f.name: getattr(host.reporter, f.name) for f in dataclasses.fields(Reporter)})
    try:
        cache_from, cache_to = plan.cache_from, plan.cache_to
        if session is not None:
            f, t = local_args(plan, session.source, session.export_dir)
            cache_from, cache_to = tuple(f), tuple(t)
        with tempfile.TemporaryDirectory(prefix="ci-toolkit-build-") as tmp:
            metadata_path = Path(tmp) / "metadata.json"
            argv = build_args.assemble(
                build_args.Argv(
                    context=context,
                    dockerfile=dockerfile,
                    target=request.target,
                    platforms=platforms,
                    tags=tags,
                    push=request.push,
                    load=request.load,
                    build_args=all_args,
                    labels=labels,
                    build_contexts=request.build_contexts,
                    secrets=request.secrets,
                    cache_from=cache_from,
                    cache_to=cache_to,
                    extra_args=plan.extra_args,
                    metadata_file=str(metadata_path),
                    builder=request.builder or settings.builder,
                )
            )
            build_start = time.monotonic()
            _run_buildx(argv, tally, request, host, env)
            build_seconds = time.monotonic() - build_start
            metadata = _read_metadata(metadata_path, host.dry_run)
            if request.metadata_file and not host.dry_run:
                target = Path(request.metadata_file)
                (target if target.is_absolute() else cwd / target).write_text(json.dumps(metadata, indent=2))
        cache_start = time.monotonic()
        if session is not None and not host.dry_run:
            _commit(session, host.reporter)
        cache_seconds = time.monotonic() - cache_start
    finally:
        if session is not None and not host.dry_run:
            session.close()
    steps = set(tally.steps)
    digest = str(metadata.get("containerimage.digest", ""))
    names = str(metadata.get("image.name", ""))
    return BuildResult(
        digest=digest,
        image_refs=tuple(n for n in names.split(",") if n) or tags,
        cache_key=plan.key,
        cache_backend=plan.backend,
        cache_hits=len(steps & tally.cached),
        cache_steps=len(steps),
        durations={
            "build": round(build_seconds, 3),
            "cache": round(cache_seconds, 3),
            "total": round(time.monotonic() - started, 3),
        },
        metadata=metadata,
        argv=tuple(argv),
    )


def _cache_root(value: str, env: Mapping[str, str], cwd: Path) -> Path:
    if "\0" in value:
        raise ToolkitError.bad_input("cache root contains a NUL character")
    if not value:
        return default_cache_root(env)
    path = Path(value).expanduser()
    return path if path.is_absolute() else cwd / path


def _open(plan: CachePlan, dry_run: bool) -> cache_store.Session | None:
    if plan.entry is None:
        return None
    if plan.backend == "local" and plan.entry.name:
        validate_key(plan.key)
    if dry_run:
        return cache_store.plan_session(plan.entry)
    try:
        return cache_store.open_session(plan.entry, plan.key)
    except OSError as exc:
        raise ToolkitError.failed(f"cannot use the cache directory {plan.entry}: {exc.strerror or exc}") from exc


def _commit(session: cache_store.Session, reporter: Reporter) -> None:
    # The image is built either way: a cache that fails its check is dropped, not fatal.
    try:
        gen = session.commit()
    except cache_store.InvalidLayout as exc:
        reporter.warning(f"cache export not kept ({exc}); the previous cache stays current")
        return
    except OSError as exc:
        reporter.warning(f"cache export not kept ({exc.strerror or exc}); the previous cache stays current")
        return
    reporter.debug(f"cache generation {gen} is now current")


def _run_buildx(argv: list[str], tally: _Tally, request: BuildRequest, host: BuildHost, env: Mapping[str, str]) -> None:
    try:
        proc.run(
            argv,
            tally,
            env=env,
            cwd=host.cwd,
            dry_run=host.dry_run,
            echo=True,
            stdin_data=request.dockerfile_text,
            what="docker buildx build",
        )
    except ToolkitError as exc:
        if exc.exit_code == EXIT_ENVIRONMENT:
            raise
        raise _explain_failure(exc, tally, host.reporter) from exc


def _explain_failure(exc: ToolkitError, tally: _Tally, reporter: Reporter) -> ToolkitError:
    text = exc.message
    limited = explain_rate_limit(ToolkitError.failed("\n".join([text, *tally.errors.values()])))
    if limited.message.startswith("pull rate limit"):
        return limited
    if "is not a docker command" in text or ("unknown command" in text and "buildx" in text):
        return ToolkitError.missing("docker buildx is not installed: install the buildx plugin (>= 0.10)")
    if re.search(r"unknown flag: --(metadata-file|build-context|cache-to)", text):
        return ToolkitError.missing(f"docker buildx is too old ({text}): upgrade the buildx plugin to >= 0.10")
    if tally.errors:
        vertex, error = next(reversed(tally.errors.items()))
        step = tally.steps.get(vertex, f"#{vertex}")
        tail = tally.logs.get(vertex, [])[-15:]
        lines = [f"build failed at {step}: {reporter.masker(error)}"]
        lines += [f"  | {reporter.masker(line)}" for line in tail]
        return ToolkitError.failed("\n".join(lines))
    return exc


def _read_metadata(path: Path, dry_run: bool) -> dict[str, Any]:
    if dry_run:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
