from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from pathlib import Path

from ci_toolkit.app import App
from ci_toolkit.build import BuildRequest, BuildResult, run_build
from ci_toolkit.build.argv import parse_pairs
from ci_toolkit.cache.backends import BACKENDS
from ci_toolkit.commands.meta import add_rule_options
from ci_toolkit.core.errors import ToolkitError

TYPE_CHECKING = False  # not typing's: importing typing costs every command's start-up (CONTRIBUTING)
if TYPE_CHECKING:
    from typing import Any


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "build",
        parents=[common],
        help="docker buildx build with safe extra args and a managed cache",
        description="Run docker buildx build. Extra args come from --extra-args, else from the variable "
        "named by the extra-args-env setting (CI_IMAGE_BUILD_EXTRA_ARGS).",
    )
    p.add_argument("context", nargs="?", default=".", help="build context (default: .)")
    p.add_argument("-f", "--file", default="", help="Dockerfile (default: CONTEXT/Dockerfile; - reads stdin)")
    p.add_argument("--target", default="", help="build stage")
    p.add_argument("--platform", action="append", default=[], help="P[,P...] (repeatable)")
    p.add_argument("-t", "--tag", action="append", default=[], help="image reference (repeatable)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--push", action="store_true", help="push to the registry")
    out.add_argument("--load", action="store_true", help="load into the engine's image store")
    out.add_argument(
        "--push-by-digest",
        action="store_true",
        help="push one --platform to each --tag REPOSITORY with no tag (then: ci-toolkit merge)",
    )
    p.add_argument(
        "--digest-dir", default="", metavar="DIR", help="with --push-by-digest: write DIR/<os>-<arch>.json for merge"
    )
    p.add_argument("--build-arg", action="append", default=[], metavar="K=V")
    p.add_argument("--label", action="append", default=[], metavar="K=V")
    p.add_argument("--build-context", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--secret", action="append", default=[], metavar="SPEC", help="buildx --secret spec")
    p.add_argument("--builder", default="", help="buildx builder")
    p.add_argument("--cache-key", default=None, help="default: $CONTAINER_NAME, else tag repository+target+platforms")
    p.add_argument("--cache-root", default="", help="local cache root (setting cache-root)")
    p.add_argument("--cache-backend", default="", choices=("", *BACKENDS), help="setting cache-backend")
    p.add_argument("--cache-ref", default="", help="repository for --cache-backend registry")
    p.add_argument("--extra-args", default=None, metavar="STRING", help="extra buildx arguments (shell-quoted)")
    p.add_argument("--metadata-file", default="", help="also write buildx metadata here")
    p.add_argument(
        "--cache-required",
        action="store_true",
        help="fail when the local cache cannot be saved (setting cache-required)",
    )
    p.add_argument("--mirror-required", action="store_true", help="fail if the Docker Hub mirror does not answer")
    _supply_chain_options(p)
    add_rule_options(p, images_help="image names for --tags-from (repeatable; default: the --tag repositories)")
    p.set_defaults(handler=run)


def _supply_chain_options(p: argparse.ArgumentParser) -> None:
    """build-push-action's attestations, annotations and buildx options."""
    p.add_argument(
        "--provenance", default="", metavar="VALUE", help="buildx --provenance: true, false, mode=min|max[,...]"
    )
    p.add_argument("--sbom", default="", metavar="VALUE", help="buildx --sbom: true, false, generator=IMAGE")
    p.add_argument("--attest", action="append", default=[], metavar="SPEC", help="buildx --attest (repeatable)")
    p.add_argument(
        "--annotation",
        action="append",
        default=[],
        metavar="[LEVEL:]K=V",
        help="image annotation (repeatable); LEVEL manifest (default), index, manifest-descriptor, index-descriptor",
    )
    p.add_argument("--no-cache", action="store_true", help="build without any cache (buildx --no-cache)")
    p.add_argument("--pull", action="store_true", help="always pull newer base images (buildx --pull)")
    p.add_argument(
        "--secret-file", action="append", default=[], metavar="ID=PATH", help="a file as secret ID (--secret id=,src=)"
    )
    p.add_argument("--ssh", action="append", default=[], metavar="SPEC", help="buildx --ssh (default, id=path)")
    p.add_argument("--network", default="", choices=("", "default", "none", "host"), help="network for RUN")
    p.add_argument("--output", action="append", default=[], metavar="SPEC", help="buildx --output instead of push/load")


def run(args: argparse.Namespace, app: App) -> int:
    from ci_toolkit.build.extra_args import expand

    if args.digest_dir and not args.push_by_digest:
        raise ToolkitError.bad_input("--digest-dir goes with --push-by-digest")
    if args.cache_key is not None:
        from ci_toolkit.cache.keys import validate_key

        validate_key(args.cache_key, source="--cache-key")
    stdin_text = None
    if args.file == "-":
        import sys

        stdin_text = sys.stdin.read()
    extra = None if args.extra_args is None else tuple(expand(args.extra_args, app.env, source="--extra-args"))
    request = BuildRequest(
        context=args.context,
        dockerfile="" if args.file == "-" else args.file,
        dockerfile_text=stdin_text,
        target=args.target,
        platforms=tuple(args.platform),
        tags=tuple(args.tag),
        push=args.push,
        load=args.load,
        push_by_digest=args.push_by_digest,
        build_args=parse_pairs(args.build_arg, "--build-arg"),
        labels=parse_pairs(args.label, "--label"),
        build_contexts=parse_pairs(args.build_context, "--build-context"),
        secrets=(*args.secret, *_secret_files(args.secret_file)),
        cache_key=args.cache_key or "",
        cache_backend=args.cache_backend,
        cache_ref=args.cache_ref,
        cache_root=args.cache_root,
        extra_args=extra,
        metadata_file=args.metadata_file,
        builder=args.builder,
        tag_rules=None if args.tag_rules is None else "\n".join(args.tag_rules),
        tag_images=tuple(args.images),
        tag_flavor="\n".join(args.flavor),
        **_supply_chain(args),
    )
    if args.mirror_required or args.cache_required:
        settings = dataclasses.replace(
            app.settings,
            mirror_required=args.mirror_required or app.settings.mirror_required,
            cache_required=args.cache_required or app.settings.cache_required,
        )
        app = dataclasses.replace(app, config=dataclasses.replace(app.config, settings=settings))
    result = run_build(request, app)
    outputs = {}
    if args.digest_dir and not app.dry_run:
        written = _write_digests(result, request, Path(args.digest_dir), app)
        outputs["digest-file"] = str(written)
        outputs["digest-artifact"] = str(written.parent)
    _publish(result, app, outputs, request)
    return 0


def _write_digests(result: BuildResult, request: BuildRequest, directory: Path, app: App) -> Path:
    from ci_toolkit.build.argv import check_platforms
    from ci_toolkit.build.by_digest import records
    from ci_toolkit.registry.digests import write

    platform = check_platforms(request.platforms)[0]
    directory = directory if directory.is_absolute() else app.cwd / directory
    return write(directory, platform, records(platform, result.image_refs, result.metadata))


def _supply_chain(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "provenance": args.provenance,
        "sbom": args.sbom,
        "attests": tuple(args.attest),
        "annotations": tuple(args.annotation),
        "no_cache": args.no_cache,
        "pull": args.pull,
        "ssh": tuple(args.ssh),
        "network": args.network,
        "outputs": tuple(args.output),
    }


def _secret_files(items: list[str]) -> list[str]:
    """build-push-action's secret-files: ``ID=PATH`` as a buildx ``--secret`` spec."""
    specs = []
    for item in items:
        ident, eq, path = item.partition("=")
        if not eq or not ident or not path or "," in item:
            raise ToolkitError.bad_input(f"--secret-file {item!r} needs the form ID=PATH (no commas)")
        specs.append(f"id={ident},src={path}")
    return specs


def _publish(result: BuildResult, app: App, extra: dict[str, str], request: BuildRequest) -> None:
    from ci_toolkit.build.summary import BuildView, log_block, markdown

    view = BuildView(
        refs=result.image_refs,
        digest=result.digest,
        platforms=_platforms(result, request, app),
        cache_backend=result.cache_backend,
        cache_key=result.cache_key,
        cache_hits=result.cache_hits,
        cache_steps=result.cache_steps,
        cache=result.cache,
        seconds=result.durations["total"],
        build_seconds=result.durations["build"],
        run_url=app.ci.run_url,
    )
    data = {**result.as_dict(), "platforms": [dataclasses.asdict(p) for p in view.platforms]}
    human = log_block(view) + (f"\n  {_cache_line(result.cache)}" if result.cache.get("entry") else "")
    if app.dry_run:
        app.reporter.result(data, human)
        return
    cache_hit = result.cache_steps > 0 and result.cache_hits == result.cache_steps
    outputs = {
        "digest": result.digest,
        "image": result.image_refs[0] if result.image_refs else "",
        "images": ",".join(result.image_refs),
        "tags": ",".join(result.image_refs),
        "cache-key": result.cache_key,
        "cache-hit": str(cache_hit).lower(),
        "cache-hits": str(result.cache_hits),
        "cache-steps": str(result.cache_steps),
        **_cache_outputs(result.cache),
        "cache-saved": str(result.cache_saved).lower(),
        **extra,
    }
    app.reporter.result(data, human, outputs=outputs)
    app.reporter.summary(markdown(view) + (f"\n\n{_cache_line(result.cache)}" if result.cache.get("entry") else ""))


def _platforms(result: BuildResult, request: BuildRequest, app: App) -> list[Any]:
    """Digest and size per platform of a pushed image, read from its manifests."""
    if app.dry_run or not request.push or not result.digest or not result.image_refs:
        return []
    from ci_toolkit.registry.client import connect, parse_reference
    from ci_toolkit.registry.describe import describe

    ref = parse_reference(result.image_refs[0])
    try:
        client = connect(ref.host, settings=app.settings, env=app.env, reporter=app.reporter)
        client.want_scope(ref.repository, "pull")
        images = describe(client, ref.repository, result.digest)
    except ToolkitError as exc:
        app.reporter.warning(f"the summary has no per-platform sizes: {exc.message}")
        return []
    return images


def _cache_outputs(cache: Mapping[str, Any]) -> dict[str, str]:
    """The cache's side of the build as step outputs; the launcher saves a CI cache on them."""
    if not cache.get("entry"):
        return {}
    names = ("entry", "export", "generation", "transport", "imported_bytes", "import_seconds", "mounts_state",
             "mounts_restored_bytes", "mounts_saved_bytes")  # fmt: skip
    return {f"cache-{name.replace('_', '-')}": str(cache.get(name, "")) for name in names}


def _cache_line(cache: Mapping[str, Any]) -> str:
    """One line: imported, exported or skipped, cache mounts, transport."""
    export = {"committed": f"exported {cache.get('generation')}", "unchanged": "export skipped (unchanged)"}
    parts = [
        f"cache imported {_mib(cache.get('imported_bytes', 0))} ({cache.get('import_seconds', 0)}s manifest)",
        export.get(str(cache.get("export")), f"export {cache.get('export')}"),
    ]
    if cache.get("mounts"):
        parts.append(
            f"cache mounts {cache.get('mounts_state')}: restored {_mib(cache.get('mounts_restored_bytes', 0))}, "
            f"saved {_mib(cache.get('mounts_saved_bytes', 0))}"
        )
    if cache.get("transport", "none") != "none":
        restored = cache.get("transport_restored") or "nothing restored"
        saving = "a new generation to save" if cache.get("export") == "committed" else "nothing new to save"
        parts.append(f"transport {cache.get('transport')}: {restored}, {saving}")
    return "; ".join(parts)


def _mib(n: object) -> str:
    return f"{int(str(n or 0)) / 2**20:.1f} MiB"
