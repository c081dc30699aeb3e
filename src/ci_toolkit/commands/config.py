from __future__ import annotations

import argparse
import json
from typing import Any

from ci_toolkit.app import App
from ci_toolkit.core.config import masked_value
from ci_toolkit.core.settings import SETTING_FIELDS


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("config", parents=[common], help="inspect settings")
    sub = parser.add_subparsers(dest="config_command", metavar="ACTION", parser_class=type(parser))
    sub.required = True
    show = sub.add_parser("show", parents=[common], help="every resolved setting, its value and its source")
    show.set_defaults(handler=show_settings)


def show_settings(args: argparse.Namespace, app: App) -> int:
    rows = []
    for key, f in SETTING_FIELDS.items():
        value = masked_value(key, getattr(app.settings, f.name))
        rows.append({"key": key, "value": value, "source": app.config.sources.get(key, "default")})
    width = max(len(r["key"]) for r in rows)
    lines = [f"{r['key']:<{width}}  {_show(r['value'])}  ({r['source']})" for r in rows]
    app.reporter.result({"settings": rows}, "\n".join(lines))
    return 0


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
