"""`ci-toolkit merge REPO`: per-platform images pushed by digest -> one index, then tags."""

from __future__ import annotations

import argparse
from pathlib import Path

from ci_toolkit.app import App
from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.retry import settings_policy

TYPE_CHECKING = False  # not typing's: importing typing costs every command's start-up (CONTRIBUTING)
if TYPE_CHECKING:
    from typing import Any


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "merge",
        parents=[common],
        help="merge per-platform images pushed by digest into one index, then tag it",
        description="Create the index inside the registry from images pushed with build --push-by-digest: "
        "no layer moves. Every expected platform must be present before any --tag is written.",
    )
    parser.add_argument("repository", metavar="REPO", help="host/repository the digests were pushed to")
    parser.add_argument("--digest-dir", default="", metavar="DIR", help="digest files written by --digest-dir")
    parser.add_argument("--digest", dest="digests", action="append", default=[], metavar="SHA", help="sha256:...")
    parser.add_argument("--tag", dest="tags", action="append", default=[], help="tag to write (repeatable)")
    parser.add_argument(
        "--platforms",
        action="append",
        default=[],
        metavar="P[,P...]",
        help="platforms that must be present (default: those of the digests)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, app: App) -> int:
    from ci_toolkit.registry import digests
    from ci_toolkit.registry.merge import MergeRequest, merge

    records: tuple[digests.DigestRecord, ...] = ()
    if args.digest_dir:
        directory = Path(args.digest_dir)
        found = digests.read(directory if directory.is_absolute() else app.cwd / directory)
        records = tuple(r for r in found if digests.same_repository(r.repository, args.repository))
        if not records:
            raise ToolkitError.failed(f"no digests for {args.repository} in {args.digest_dir}")
    platforms = tuple(p.strip() for item in args.platforms for p in item.split(",") if p.strip())
    request = MergeRequest(
        repository=args.repository,
        digests=tuple(args.digests),
        records=records,
        tags=tuple(args.tags),
        platforms=platforms,
        dry_run=app.dry_run,
        retry=settings_policy(app.settings),
    )
    result = merge(request, settings=app.settings, env=app.env, reporter=app.reporter)
    verb = "would write" if app.dry_run else "wrote"
    human = (
        f"merged {', '.join(result.platforms)} into {result.repository}@{result.digest}\n"
        f"  {verb}: {', '.join(result.tags) or '(by digest only)'}"
    )
    outputs = {"digest": result.digest, "image": f"{result.repository}@{result.digest}", "tags": ",".join(result.tags)}
    app.reporter.result(result.as_dict(), human, outputs=outputs)
    return 0
