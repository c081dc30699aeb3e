from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ci_toolkit.app import App


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("cache", parents=[common], help="list and prune the local build cache")
    sub = parser.add_subparsers(dest="cache_command", metavar="ACTION")
    sub.required = True
    ls = sub.add_parser("ls", parents=[common], help="keys, sizes, generations, last use")
    ls.add_argument("--cache-root", default="", help="local cache root (setting cache-root)")
    ls.set_defaults(handler=run_ls)
    pr = sub.add_parser("prune", parents=[common], help="remove old generations and least recently used keys")
    pr.add_argument("--cache-root", default="", help="local cache root (setting cache-root)")
    pr.add_argument("--max-size", default=None, help="size bound (setting cache-max-size, default 20G)")
    pr.add_argument("--max-age", default=None, help="age bound (setting cache-max-age, default 14d)")
    pr.add_argument("--key", default="", help="only this key")
    pr.add_argument("--grace", default="10s", help="keep generations younger than this (default 10s)")
    pr.set_defaults(handler=run_prune)


def _root(args: argparse.Namespace, app: App) -> Path:
    from ci_toolkit.cache.backends import resolve_root
    from ci_toolkit.core.errors import ToolkitError

    root = resolve_root(args.cache_root or app.settings.cache_root, app.env, app.cwd)
    if root.exists() and not root.is_dir():
        raise ToolkitError.bad_input(f"cache root {root} is not a directory")
    return root


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def run_ls(args: argparse.Namespace, app: App) -> int:
    from ci_toolkit.cache import last_build
    from ci_toolkit.cache import store as cache_store

    root = _root(args, app)
    infos = cache_store.entries(root)
    rows = [
        {
            "key": i.key,
            "dir": i.path.name,
            "size": i.size,
            "generations": i.generations,
            "last_used": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(i.last_used)),
            "in_use": i.in_use,
            "mounts": [{"key": key, "size": size} for key, size in i.mounts],
            "last_build": last_build.read(i.path),
        }
        for i in infos
    ]
    lines = [f"{'KEY':<40} {'SIZE':>10} {'GENS':>4}  {'LAST USED':<20}  MOUNTS"]
    lines += [
        f"{r['key']:<40} {_size(i.size):>10} {r['generations']:>4}  {r['last_used']:<20}  "
        + (", ".join(f"{key} {_size(size)}" for key, size in i.mounts) or "-")
        for r, i in zip(rows, infos, strict=True)
    ]
    if not rows:
        lines = [f"no cache entries under {root}"]
    app.reporter.result({"root": str(root), "entries": rows}, "\n".join(lines))
    return 0


def run_prune(args: argparse.Namespace, app: App) -> int:
    from ci_toolkit.cache.prune import prune
    from ci_toolkit.core.units import parse_duration, parse_size

    max_size = parse_size(args.max_size or app.settings.cache_max_size, "--max-size")
    max_age = parse_duration(args.max_age or app.settings.cache_max_age, "--max-age")
    grace = parse_duration(args.grace, "--grace")
    root = _root(args, app)
    done = prune(root, max_size=max_size, max_age=max_age, key=args.key, grace=grace, dry_run=app.dry_run)
    verb = "would remove" if app.dry_run else "removed"
    lines = [f"{verb} {p.what} {p.name} of {p.key!r} ({p.reason})" for p in done] or ["nothing to prune"]
    rows = [{"key": p.key, "what": p.what, "name": p.name, "reason": p.reason} for p in done]
    app.reporter.result({"root": str(root), "dry_run": app.dry_run, "removed": rows}, "\n".join(lines), outputs={})
    return 0
