from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from ci_toolkit.app import App
from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.files import write_atomic
from ci_toolkit.core.refs import DOCKER_HUB, parse_reference
from ci_toolkit.mirror import render as mirror_render
from ci_toolkit.mirror import resolve as mirror


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("mirror", parents=[common], help="registry mirrors: rewrite, render, check")
    sub = parser.add_subparsers(dest="mirror_command", metavar="ACTION", parser_class=type(parser))
    sub.required = True

    rewrite = sub.add_parser("rewrite", parents=[common], help="print references rewritten to their mirror")
    rewrite.add_argument("refs", nargs="+", metavar="REF")
    rewrite.add_argument("--probe", action="store_true", help="probe the mirror; fall back to the upstream if down")
    _required_flag(rewrite)
    rewrite.set_defaults(handler=run_rewrite)

    render = sub.add_parser("render", parents=[common], help="render buildkitd.toml, daemon.json or hosts.toml")
    render.add_argument("--format", required=True, choices=mirror_render.FORMATS)
    render.add_argument("--merge", metavar="FILE", help="daemon-json: merge into this existing daemon.json")
    render.add_argument("--registry", default=DOCKER_HUB, help="containerd-hosts: the registry (default docker.io)")
    render.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    render.set_defaults(handler=run_render)

    registry = sub.add_parser("registry", parents=[common], help="print the effective DOCKER_REGISTRY (probed)")
    _required_flag(registry)
    registry.set_defaults(handler=run_registry)

    check = sub.add_parser("check", parents=[common], help="probe the mirror and HEAD the manifests of REFs")
    check.add_argument("refs", nargs="*", metavar="REF", default=["busybox"])
    _required_flag(check)
    check.set_defaults(handler=run_check)


def _required_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mirror-required", action="store_true", default=None, help="fail instead of falling back to the upstream"
    )


def _app_settings(args: argparse.Namespace, app: App) -> Any:
    if getattr(args, "mirror_required", None):
        return dataclasses.replace(app.settings, mirror_required=True)
    return app.settings


def run_rewrite(args: argparse.Namespace, app: App) -> int:
    settings = _app_settings(args, app)
    rows = []
    for text in args.refs:
        if args.probe:
            target = mirror.pull_reference(text, settings, app.reporter)
        else:
            target = mirror.rewrite_static(text, settings)
        rows.append({"reference": text, "normalized": str(parse_reference(text)), "pull": target})
    app.reporter.result({"references": rows}, "\n".join(r["pull"] for r in rows))
    return 0


def run_render(args: argparse.Namespace, app: App) -> int:
    merge_text = None
    if args.merge:
        if args.format != "daemon-json":
            raise ToolkitError.bad_input("--merge applies to --format daemon-json only")
        merge_text = _read(app.cwd / args.merge)
    rendered = mirror_render.render(args.format, app.settings, registry=args.registry, merge_text=merge_text)
    for note in rendered.notes:
        app.reporter.warning(note)
    if args.output:
        out = app.cwd / args.output
        if app.dry_run:
            app.reporter.info(f"would write {out}")
        else:
            write_atomic(out, rendered.text)
            app.reporter.info(f"wrote {out}")
        app.reporter.result({"format": args.format, "path": str(out), "text": rendered.text, "notes": rendered.notes})
    else:
        app.reporter.result({"format": args.format, "text": rendered.text, "notes": rendered.notes}, rendered.text)
    return 0


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise ToolkitError.bad_input(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ToolkitError.bad_input(f"cannot read {path}: not UTF-8 text") from exc


def run_registry(args: argparse.Namespace, app: App) -> int:
    value = mirror.effective_docker_registry(_app_settings(args, app), app.reporter)
    app.reporter.result({"docker_registry": value}, value)
    return 0


def run_check(args: argparse.Namespace, app: App) -> int:
    settings = _app_settings(args, app)
    rows = [mirror.check_reference(text, settings, app.reporter) for text in args.refs]
    lines = [f"{c.reference}: HTTP {c.status}{' (' + c.detail + ')' if c.detail else ''}" for c in rows]
    app.reporter.result({"checks": [dataclasses.asdict(c) for c in rows]}, "\n".join(lines))
    missing = [c for c in rows if c.status == 404]
    if missing:
        raise ToolkitError.failed(f"image {missing[0].reference} not found")
    return 0
