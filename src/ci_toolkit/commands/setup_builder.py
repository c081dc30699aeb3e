from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from ci_toolkit.app import App
from ci_toolkit.build.builder import DRIVERS, BuilderRequest, setup_builder, state_dir


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "setup-builder", parents=[common], help="create a buildx builder configured with the registry mirrors"
    )
    parser.add_argument("--name", default="ci-toolkit", help="builder name (default: ci-toolkit)")
    parser.add_argument("--driver", default="docker-container", choices=DRIVERS)
    parser.add_argument("--endpoint", default="", metavar="URL", help="remote driver: tcp://HOST:PORT")
    parser.add_argument("--driver-opt", action="append", default=[], metavar="OPT", help="passed to buildx")
    parser.add_argument("--bootstrap", action="store_true", help="start the builder now")
    parser.add_argument("--use", action="store_true", help="make it the current builder")
    parser.add_argument("--state-dir", metavar="DIR", help="where configs and hashes are kept")
    parser.add_argument(
        "--emulation",
        nargs="?",
        const=",".join(("linux/arm64", "linux/amd64")),
        default=None,
        metavar="P[,P...]",
        help="enable QEMU binfmt handlers for these platforms (default: linux/arm64,linux/amd64), then stop",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, app: App) -> int:
    if args.emulation is not None:
        return _emulation(args.emulation, app)
    request = BuilderRequest(
        name=args.name,
        driver=args.driver,
        endpoint=args.endpoint,
        bootstrap=args.bootstrap,
        use=args.use,
        driver_opts=tuple(args.driver_opt),
    )
    directory = Path(args.state_dir) if args.state_dir else state_dir(app.env)
    result = setup_builder(request, app.settings, app.reporter, directory, dry_run=app.dry_run)
    prefix = "dry run, nothing changed: would have " if app.dry_run and result.action != "reused" else ""
    app.reporter.result(dataclasses.asdict(result), f"{prefix}{result.action} builder {result.name}", outputs={})
    return 0


def _emulation(value: str, app: App) -> int:
    from ci_toolkit.build import emulation

    platforms = tuple(p.strip() for p in value.split(",") if p.strip())
    for platform in platforms:
        emulation.handler(platform)  # unknown platform: bad input before anything runs
    enabled = emulation.enable(platforms, app.reporter, dry_run=app.dry_run)
    verb = "would enable" if app.dry_run else "enabled"
    human = f"emulation {verb} for {', '.join(enabled)}" if enabled else f"emulation ready for {', '.join(platforms)}"
    app.reporter.result({"platforms": list(platforms), "enabled": enabled}, human, outputs={})
    return 0
