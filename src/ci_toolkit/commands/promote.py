from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from ci_toolkit.app import App
from ci_toolkit.core.errors import ToolkitError


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "promote",
        parents=[common],
        help="point floating tags (latest) at an image in the registry, never backwards",
        description="Copy SOURCE's manifest to each --tag inside the registry: no layer pulled or pushed, "
        "an index keeps its digest, and a tag never moves to an older build unless --force.",
    )
    parser.add_argument("source", metavar="SOURCE", help="immutable reference: host/repo:tag or host/repo@sha256:...")
    parser.add_argument("--tag", dest="tags", action="append", required=True, help="floating tag (repeatable)")
    parser.add_argument("--to", dest="to_repo", default="", metavar="REPO", help="another repository, same registry")
    parser.add_argument(
        "--order-by",
        default="auto",
        choices=("auto", "build-number", "created", "semver"),
        help="ordering key (auto: build number, else created time)",
    )
    parser.add_argument("--force", action="store_true", help="move the tag even backwards")
    parser.add_argument(
        "--no-referrers",
        dest="referrers",
        action="store_false",
        help="with --to: do not copy the image's referrers (signatures, SBOMs: OCI referrers API or sha256-<hex> tags)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a tag was skipped")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS", help="per-request read timeout")
    parser.add_argument(
        "--retries",
        type=int,
        default=None,
        metavar="N",
        help="retries per request after a transient fault (setting retries)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, app: App) -> int:
    from ci_toolkit.core.retry import policy_from
    from ci_toolkit.core.units import parse_duration
    from ci_toolkit.registry.promote import PromoteRequest, promote

    retries = app.settings.retries if args.retries is None else args.retries
    if not 0 < args.timeout < float("inf") or retries < 0:
        raise ToolkitError.bad_input("--timeout must be > 0 and --retries >= 0")
    policy = policy_from(retries, parse_duration(app.settings.retry_max_wait, "setting retry-max-wait"))
    request = PromoteRequest(
        source=args.source,
        tags=tuple(args.tags),
        to_repo=args.to_repo,
        order_by=args.order_by,
        force=args.force,
        strict=args.strict,
        dry_run=app.dry_run,
        retry=dataclasses.replace(policy, read_timeout=args.timeout),
        referrers=args.referrers,
    )
    result = promote(request, settings=app.settings, env=app.env, reporter=app.reporter)
    for outcome in result.outcomes:
        # Human mode prints these lines as the result; with --json they would go unseen.
        if app.reporter.json_mode and outcome.action in ("skipped", "superseded"):
            app.reporter.warning(outcome.detail)
    human = "\n".join(o.detail for o in result.outcomes)
    tags = ",".join(o.reference for o in result.outcomes)
    app.reporter.result(result.as_dict(), human, outputs={"digest": result.digest, "tags": tags})
    return result.exit_code
