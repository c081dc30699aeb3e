from __future__ import annotations

import argparse
from typing import Any

from ci_toolkit.app import App
from ci_toolkit.build.doctor import run_checks
from ci_toolkit.core.errors import EXIT_ENVIRONMENT


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("doctor", parents=[common], help="check engine, buildx, emulation, registries")
    parser.add_argument("--builder", default="", metavar="NAME", help="also check this buildx builder")
    parser.add_argument(
        "--platform", action="append", default=[], metavar="P[,P...]", help="require emulation for these platforms"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, app: App) -> int:
    platforms = tuple(p.strip() for item in args.platform for p in item.split(",") if p.strip())
    checks = run_checks(app.settings, app.reporter, builder=args.builder or "", platforms=platforms)
    width = max(len(c.name) for c in checks)
    lines = [
        f"{'OK' if c.ok else ('MISSING' if c.required else 'WARN'):<8} {c.name:<{width}}  {c.detail}" for c in checks
    ]
    rows = [{"check": c.name, "ok": c.ok, "required": c.required, "detail": c.detail} for c in checks]
    failed = [c for c in checks if c.required and not c.ok]
    app.reporter.result({"checks": rows, "ok": not failed}, "\n".join(lines))
    if failed:
        first = failed[0]
        app.reporter.error(f"{first.name}: {first.detail}; {first.fix}")
        return EXIT_ENVIRONMENT
    return 0
