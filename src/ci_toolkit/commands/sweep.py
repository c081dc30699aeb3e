from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

from ci_toolkit.app import App
from ci_toolkit.containers.sweep import SweepRequest, check_request, sweep
from ci_toolkit.core import units

# A job on another host sharing this engine cannot be checked for liveness; no CI job
# this toolkit serves runs that long, so older resources are orphans.
OTHER_HOSTS_AGE = "6h"


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "sweep",
        parents=[common],
        help="remove leftover toolkit containers, networks and volumes",
        description="Remove resources labelled <prefix>.managed=true that belong to a job (--job-id; default: "
        "this CI job) or whose owner is gone (--stale: on this host the owner pid is dead or was recycled; "
        "from another host, a shared engine, only when older than --older-than, default 6h). "
        "Live jobs are never touched.",
    )
    parser.add_argument("--job-id", default=None, help="that job's resources (default: the current CI job)")
    parser.add_argument("--stale", action="store_true", help="resources whose owner process is gone")
    parser.add_argument(
        "--older-than",
        metavar="DURATION",
        default=OTHER_HOSTS_AGE,
        help=f"with --stale: resources of other hosts this old [{OTHER_HOSTS_AGE}]",
    )
    parser.add_argument("--label", action="append", default=[], metavar="K=V", help="only resources with this label")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, app: App) -> int:
    job_id = args.job_id
    if job_id is None and not args.stale:
        job_id = app.settings.job_id or app.ci.job_id
    request = SweepRequest(
        prefix=app.settings.label_prefix,
        job_id=job_id or "",
        stale=args.stale or args.older_than != OTHER_HOSTS_AGE,
        older_than=units.parse_duration(args.older_than, "--older-than"),
        labels=units.parse_pairs(args.label, "--label"),
        dry_run=app.dry_run,
    )
    check_request(request)
    outcomes = sweep(request, env=app.env)
    counts = Counter(o.action for o in outcomes)
    lines = [
        f"{o.action:<12} {o.kind:<9} {o.name}  ({o.reason}{f'; job {o.job_id}' if o.job_id else ''})" for o in outcomes
    ]
    summary = ", ".join(f"{n} {a}" for a, n in sorted(counts.items())) or "nothing to sweep"
    app.reporter.result(
        {"dry_run": request.dry_run, "counts": dict(counts), "resources": [o.as_dict() for o in outcomes]},
        "\n".join([*lines, summary]),
        outputs={},
    )
    failed = [o for o in outcomes if o.action == "failed"]
    if failed:
        app.reporter.error(
            f"sweep could not remove {len(failed)} resource(s): first {failed[0].name}: {failed[0].reason}"
        )
        return 1
    return 0
