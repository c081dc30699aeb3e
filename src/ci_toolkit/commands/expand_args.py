from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any, cast

from ci_toolkit.app import App
from ci_toolkit.build.extra_args import expand


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "expand-args",
        parents=[common],
        help="show the arguments extra args expand to",
        description="Tokenize and expand STRING (default: the variable named by the extra-args-env setting) "
        "exactly as `build` does; prints one argument per line, or a JSON list with --json.",
    )
    parser.add_argument("string", nargs="?", default=None, metavar="STRING")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, app: App) -> int:
    if args.string is None:
        source = app.settings.extra_args_env
        text = app.env.get(source, "")
    else:
        source, text = "STRING", args.string
    tokens = expand(text, app.env, source=source)
    # The JSON form is a plain list of strings (what a script wants); result() only dumps it.
    app.reporter.result(cast(Mapping[str, Any], tokens), "\n".join(tokens) if tokens else None)
    return 0
