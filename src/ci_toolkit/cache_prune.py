"""``cache prune``: old generations and orphaned exports first, then whole keys, least
recently used first, until the store is within its age and size bounds. A generation in use
(shared flock held by a running build) is never removed."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from ci_toolkit import cache_store
from ci_toolkit.cache_keys import key_dirname
from ci_toolkit.errors import ToolkitError

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?\s*", text.lower())
    if not m:
        raise ToolkitError.bad_input(f"bad size {text!r}: expected e.g. 500M, 20G")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def parse_age(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text.lower())
    if not m:
        raise ToolkitError.bad_input(f"bad age {text!r}: expected e.g. 30s, 12h, 14d")
    return float(m.group(1)) * _AGE_UNITS[m.group(2) or "s"]


@dataclass(frozen=True)
class Pruned:
    key: str
    what: str  # "generation", "temporary", "key"
    name: str
    reason: str


def prune(
    root: Path,
    *,
    max_size: int,
    max_age: float,
    key: str = "",
    grace: float = cache_store.GRACE_SECONDS,
    dry_run: bool = False,
) -> list[Pruned]:
    infos = cache_store.entries(root)
    if key:
        infos = [i for i in infos if i.key == key or i.path.name in (key, key_dirname(key))]
    done: list[Pruned] = []
    for info in infos:
        got = cache_store.collect(info.path, grace=grace, dry_run=dry_run)
        done += [Pruned(info.key, "generation", g, "not current") for g in got.generations]
        done += [Pruned(info.key, "temporary", t, "owner gone") for t in got.temporaries]
    infos = sorted((cache_store.describe(i.path) for i in infos), key=lambda i: i.last_used)
    now = time.time()
    total = sum(i.size for i in infos)
    for info in infos:
        too_old = now - info.last_used > max_age
        if not too_old and total <= max_size:
            continue
        if info.in_use:
            continue
        reason = "older than max age" if too_old else "over max size (least recently used)"
        if dry_run or cache_store.remove_entry(info.path):
            done.append(Pruned(info.key, "key", info.path.name, reason))
            total -= info.size
    return done
