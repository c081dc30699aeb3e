"""Execution of one build: request -> checks -> cache plan -> buildx -> metadata -> commit."""

from __future__ import annotations

import dataclasses
import json
import re
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from ci_toolkit.build import argv as build_args
from ci_toolkit.build import disk_full, warm
from ci_toolkit.build.extra_args import expand, host_access
from ci_toolkit.build.progress import Tally
from ci_toolkit.build.request import BuildHost, BuildRequest, BuildResult
from ci_toolkit.cache import store as cache_store
from ci_toolkit.cache.backends import CachePlan, local_args, plan_cache, resolve_root
from ci_toolkit.cache.keys import derive_key, validate_key
from ci_toolkit.core import proc, retry
from ci_toolkit.core.errors import EXIT_ENVIRONMENT, ToolkitError
from ci_toolkit.core.files import write_atomic
from ci_toolkit.core.report import Reporter

TYPE_CHECKING = False  # not typing's: importing typing costs every command's start-up (CONTRIBUTING)
if TYPE_CHECKING:
    from typing import Any

    from ci_toolkit.cache import mounts as cache_mounts


@dataclasses.dataclass(frozen=True)
class _Prepared:
    """A request checked against its inputs, with its cache planned: nothing has run yet."""

    context: str
    dockerfile: str
    platforms: tuple[str, ...]
    tags: tuple[str, ...]
    plan: CachePlan
    labels: Mapping[str, str]
    build_args: Mapping[str, str]
    annotations: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class _Ran:
    """What running buildx left: its argv, metadata, timings and cache outcome."""

    argv: list[str]
    metadata: dict[str, Any]
    build_seconds: float
    cache_seconds: float
    cache: warm.Outcome
    pushed: tuple[str, ...] = ()
    cache_saved: bool = True


def execute(request: BuildRequest, host: BuildHost) -> BuildResult:
    """Prepare (check + plan the cache), build with buildx, read its metadata, commit the
    cache generation, and describe the result."""
    started = time.monotonic()
    prepared = _prepare(request, host)
    tally = Tally(**{f.name: getattr(host.reporter, f.name) for f in dataclasses.fields(Reporter)})
    session = _open(prepared.plan, host.dry_run)
    try:
        ran = _build_and_commit(request, host, prepared, session, tally)
    finally:
        if session is not None and not host.dry_run:
            session.close()
    return _result(prepared, ran, tally, started)


def _prepare(request: BuildRequest, host: BuildHost) -> _Prepared:
    settings, env, cwd = host.settings, host.env, host.cwd
    _check_exclusive(request)
    platforms = build_args.check_platforms(request.platforms)
    git_tags, git_labels = _from_git(request, host)
    user_annotations = build_args.check_annotations(request.annotations)
    tags = tuple(dict.fromkeys(build_args.check_tag(t) for t in (*request.tags, *git_tags)))
    if request.push_by_digest:
        from ci_toolkit.build import by_digest

        by_digest.check(tags, platforms, push=request.push, load=request.load)
    build_args.check_names(request.build_args, request.labels, request.build_contexts)
    context, dockerfile = build_args.resolve_paths(
        request.context, request.dockerfile, request.dockerfile_text is not None, cwd
    )
    plan = _plan_cache(request, host, tags, platforms, context)
    # cache-backend gha: buildx reads the runtime token from the environment; never print it.
    for name in ("ACTIONS_RUNTIME_TOKEN", *build_args.secret_env_names(request.secrets)):
        if env.get(name):
            host.reporter.add_secret(env[name])
    labels = {**build_args.toolkit_labels(host.ci, env, settings), **git_labels, **request.labels}
    all_args = {**build_args.docker_registry_arg(settings, request.build_args, host.reporter), **request.build_args}
    annotations = _annotations(request, host, platforms, plan, labels) + user_annotations
    return _Prepared(context, dockerfile, platforms, tags, plan, labels, all_args, annotations)


def _annotations(
    request: BuildRequest, host: BuildHost, platforms: tuple[str, ...], plan: CachePlan, labels: Mapping[str, str]
) -> tuple[str, ...]:
    """The toolkit's OCI labels as annotations too: registries and tools that never read an
    image config (promote's ordering, referrer listings, UIs) see them on the manifests, and
    on the index when a pushed build makes one (buildx refuses index annotations otherwise)."""
    if not host.settings.oci_annotations or not (request.push or request.load):
        return ()
    levels = ["manifest"]
    index = build_args.makes_index(
        platforms, request.provenance, request.sbom, request.attests, plan.extra_args, host.env
    )
    # push-by-digest writes a single-platform layout; merge makes the index and annotates it.
    if request.push and index and not request.push_by_digest:
        levels.append("index")
    toolkit = {k: v for k, v in labels.items() if k not in request.labels}
    return tuple(f"{level}:{k}={v}" for level in levels for k, v in toolkit.items())


def _from_git(request: BuildRequest, host: BuildHost) -> tuple[tuple[str, ...], Mapping[str, str]]:
    """Tags and OCI labels from the git context (metadata-action's rules), when asked for."""
    if request.tag_rules is None:
        return (), {}
    from ci_toolkit.build.tags import MetaRequest, compute

    images = request.tag_images or tuple(dict.fromkeys(_repository_of(t) for t in request.tags))
    if not images:
        raise ToolkitError.bad_input("--tags-from needs --image NAME (or a --tag to take the repository from)")
    meta = compute(
        MetaRequest(images=images, rules=request.tag_rules, flavor=request.tag_flavor),
        host.ci,
        source_url=build_args.source_url(host.env),
    )
    if not meta.tags:
        host.reporter.info("notice: the tag rules give no tag for this event")
    return meta.tags, meta.labels


def _repository_of(reference: str) -> str:
    name = reference.partition("@")[0]
    head, slash, last = name.rpartition("/")
    return head + slash + last.partition(":")[0]


def _check_exclusive(request: BuildRequest) -> None:
    if request.push and request.load:
        raise ToolkitError.bad_input("--push and --load exclude each other")
    if request.outputs and (request.push or request.load or request.push_by_digest):
        raise ToolkitError.bad_input("--output replaces --push/--load: give one of them")
    if request.dockerfile and request.dockerfile_text is not None:
        raise ToolkitError.bad_input("give a Dockerfile path or inline Dockerfile text, not both")


def _plan_cache(
    request: BuildRequest, host: BuildHost, tags: tuple[str, ...], platforms: tuple[str, ...], context: str
) -> CachePlan:
    settings, env, cwd = host.settings, host.env, host.cwd
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
        root=resolve_root(request.cache_root or settings.cache_root, env, cwd),
        ref=request.cache_ref or settings.cache_ref,
        extra_args=extra,
        cwd=cwd,
        home=Path(env["HOME"]) if env.get("HOME") else None,
        compression=settings.cache_compression,
        compression_level=settings.cache_compression_level,
        env=env,
    )
    if plan.notice:
        host.reporter.info(f"notice: {plan.notice}")
    if plan.warning:
        host.reporter.warning(plan.warning)
    reaching = host_access([*extra, *(t for spec in request.secrets for t in ("--secret", spec))])
    if reaching:
        host.reporter.info(f"notice: build flags that read or write this host: {'; '.join(reaching)}")
    return plan


def _build_and_commit(
    request: BuildRequest,
    host: BuildHost,
    prepared: _Prepared,
    session: cache_store.Session | None,
    tally: Tally,
) -> _Ran:
    cache_from, cache_to = prepared.plan.cache_from, prepared.plan.cache_to
    outcome = warm.Outcome()
    if prepared.plan.entry is not None:
        outcome.entry = str(prepared.plan.entry)
        outcome.transport = warm.transport(host.settings, host.env, host.ci.provider)
    live = session if session is not None and not host.dry_run else None
    mounts: tuple[cache_mounts.CacheMount, ...] = ()
    if session is not None:
        f, t = local_args(prepared.plan, session.source, session.export_dir)
        cache_from, cache_to = tuple(f), tuple(t)
        mounts = warm.find_mounts(request.dockerfile_text, prepared.dockerfile, host.settings)
    helper = _warm_up(request, host, prepared, live, mounts, outcome)
    with tempfile.TemporaryDirectory(prefix="ci-toolkit-build-") as tmp:
        metadata_path = Path(tmp) / "metadata.json"
        argv = _assemble(request, host, prepared, cache_from, cache_to, metadata_path)
        build_start = time.monotonic()
        argv, unsaved = _build_keeping_image(request, host, prepared, session, tally, argv, cache_from, metadata_path)
        metadata = _read_metadata(metadata_path, host.dry_run)
        pushed: tuple[str, ...] = ()
        if request.push_by_digest and not host.dry_run:
            from ci_toolkit.build import by_digest

            pushed = by_digest.push(Path(tmp) / "layout", metadata, prepared.tags, host=host)
        build_seconds = time.monotonic() - build_start
        _write_metadata_file(request, host, metadata)
    outcome.import_seconds = round(tally.import_seconds, 3)
    cache_start = time.monotonic()
    if live is not None and not unsaved:
        changed = helper is not None and warm.save(helper, live, mounts, tally.ran(), host.settings, outcome)
        warm.commit(live, host.reporter, outcome, mounts_changed=changed)
        warm.travel(live, outcome, host.env)
        warm.record(live.entry, outcome)
    unsaved = unsaved or outcome.unsaved
    if unsaved:
        failure = disk_full.not_saved(unsaved, host.settings.cache_required)
        if failure is not None:
            raise failure
        host.reporter.warning(unsaved)
    seconds = time.monotonic() - cache_start
    return _Ran(argv, metadata, build_seconds, seconds, outcome, pushed, cache_saved=not unsaved)


def _build_keeping_image(
    request: BuildRequest,
    host: BuildHost,
    prepared: _Prepared,
    session: cache_store.Session | None,
    tally: Tally,
    argv: list[str],
    cache_from: tuple[str, ...],
    metadata_path: Path,
) -> tuple[list[str], str]:
    """buildx; when what failed is the cache export to our directory hitting the disk (full,
    read-only, forbidden), once more without it (BuildKit's own cache makes that cheap), so
    the image result stands. Returns the argv that ran and why the cache is not saved."""
    shown, hidden = build_args.secret_build_args(argv, host.reporter.masker)
    try:
        _run_buildx(shown, tally, request, host, {**host.env, **hidden})
        return shown, ""
    except ToolkitError as exc:
        code = disk_full.export_failure(exc.message, session.export_dir) if session is not None else None
        if code is None or session is None:
            raise
        unsaved = disk_full.message(prepared.plan.key, session.entry.parent, code)
    shown, hidden = build_args.secret_build_args(
        _assemble(request, host, prepared, cache_from, (), metadata_path), host.reporter.masker
    )
    _run_buildx(shown, tally, request, host, {**host.env, **hidden})
    return shown, unsaved


def _warm_up(
    request: BuildRequest,
    host: BuildHost,
    prepared: _Prepared,
    live: cache_store.Session | None,
    mounts: tuple[cache_mounts.CacheMount, ...],
    outcome: warm.Outcome,
) -> cache_mounts.Helper | None:
    """Before buildx: what the build imports, and its cache mounts restored. The helper that
    moves cache mounts exists only when the Dockerfile has some."""
    if live is None:
        return None
    warm.imported(live, outcome)
    if not mounts:
        return None
    builder = request.builder or host.settings.builder
    helper = warm.helper(host.settings, prepared.build_args, builder, host.env, host.reporter)
    warm.restore(helper, live, mounts, outcome)
    return helper


def _assemble(
    request: BuildRequest,
    host: BuildHost,
    prepared: _Prepared,
    cache_from: tuple[str, ...],
    cache_to: tuple[str, ...],
    metadata_path: Path,
) -> list[str]:
    builder = request.builder or host.settings.builder
    argv = build_args.assemble(
        build_args.Argv(
            context=prepared.context,
            dockerfile=prepared.dockerfile,
            target=request.target,
            platforms=prepared.platforms,
            tags=() if request.push_by_digest else prepared.tags,
            push=request.push,
            load=request.load,
            build_args=prepared.build_args,
            labels=prepared.labels,
            build_contexts=request.build_contexts,
            secrets=request.secrets,
            cache_from=(*cache_from, *request.cache_from),
            cache_to=cache_to,
            extra_args=prepared.plan.extra_args,
            metadata_file=str(metadata_path),
            builder=builder,
            outputs=_digest_outputs(request, metadata_path),
            provenance=request.provenance,
            sbom=request.sbom,
            attests=request.attests,
            annotations=prepared.annotations,
            flags=build_args.option_flags(
                no_cache=request.no_cache,
                pull=request.pull,
                ssh=request.ssh,
                network=request.network,
                outputs=request.outputs,
            ),
        )
    )
    from ci_toolkit.build.context import through_context

    return through_context(argv, builder, host.env, host.reporter)


def _digest_outputs(request: BuildRequest, metadata_path: Path) -> tuple[str, ...]:
    if not request.push_by_digest:
        return ()
    from ci_toolkit.build import by_digest  # lazily: registry code most builds never use

    return tuple(by_digest.output_args(metadata_path.parent / "layout"))


def _write_metadata_file(request: BuildRequest, host: BuildHost, metadata: Mapping[str, Any]) -> None:
    if request.metadata_file and not host.dry_run:
        target = Path(request.metadata_file)
        target = target if target.is_absolute() else host.cwd / target
        write_atomic(target, json.dumps(metadata, indent=2), what=f"cannot write --metadata-file {target}")


def _result(prepared: _Prepared, ran: _Ran, tally: Tally, started: float) -> BuildResult:
    steps = set(tally.steps)
    names = str(ran.metadata.get("image.name", ""))
    return BuildResult(
        digest=str(ran.metadata.get("containerimage.digest", "")),
        image_refs=ran.pushed or tuple(n for n in names.split(",") if n) or prepared.tags,
        cache_key=prepared.plan.key,
        cache_backend=prepared.plan.backend,
        cache_hits=len(steps & tally.served()),
        cache_steps=len(steps),
        durations={
            "build": round(ran.build_seconds, 3),
            "cache": round(ran.cache_seconds, 3),
            "total": round(time.monotonic() - started, 3),
        },
        metadata=ran.metadata,
        argv=tuple(ran.argv),
        cache=ran.cache.as_dict(),
        cache_saved=ran.cache_saved,
    )


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


def _run_buildx(argv: list[str], tally: Tally, request: BuildRequest, host: BuildHost, env: Mapping[str, str]) -> None:
    """buildx, again after a transient registry fault in its output (a push, a pull, a cache
    import or export): its own cache makes a rerun cheap, and one 500 must not fail the job."""
    seen = [""]

    def once() -> None:
        tally.errors.clear()
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
            seen[0] = "\n".join([exc.message, *tally.errors.values()])
            from ci_toolkit.build import emulation

            logs = "\n".join(line for lines in tally.logs.values() for line in lines)
            raise emulation.explain(f"{seen[0]}\n{logs}", request.platforms) or _explain_failure(
                exc, tally, host, request.push
            ) from exc

    what = f"push of {request.tags[0]}" if request.push and request.tags else "docker buildx build"
    policy = retry.settings_policy(host.settings)
    retry.with_retries(
        once, policy=policy, reporter=host.reporter, what=what, classify=lambda _exc: retry.transient_fault(seen[0])
    )


def _explain_failure(exc: ToolkitError, tally: Tally, host: BuildHost, pushing: bool) -> ToolkitError:
    from ci_toolkit.build import refusals  # only a failed build needs these
    from ci_toolkit.mirror.resolve import explain_rate_limit

    reporter = host.reporter
    text = exc.message
    limited = explain_rate_limit(ToolkitError.failed("\n".join([text, *tally.errors.values()])))
    if limited.message.startswith("pull rate limit"):
        return limited
    if "is not a docker command" in text or ("unknown command" in text and "buildx" in text):
        return ToolkitError.missing("docker buildx is not installed: install the buildx plugin (>= 0.10)")
    if re.search(r"unknown flag: --(metadata-file|build-context|cache-to)", text):
        return ToolkitError.missing(f"docker buildx is too old ({text}): upgrade the buildx plugin to >= 0.10")
    refused = refusals.explain(
        "\n".join([text, *tally.errors.values()]), settings=host.settings, env=host.env, pushing=pushing
    )
    if refused is not None:
        return refused
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
