from __future__ import annotations

import argparse
from typing import Any

from ci_toolkit import __version__
from ci_toolkit.app import App


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("version", parents=[common], help="print the version")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, app: App) -> int:
    app.reporter.result({"version": __version__}, f"ci-toolkit {__version__}")
    return 0
