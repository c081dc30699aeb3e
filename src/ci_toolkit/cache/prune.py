"""``cache prune``: old generations and orphaned exports first, then whole keys, least
recently used first, until the store is within its age and size bounds. A generation in use
(shared flock held by a running build) is never removed."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ci_toolkit.cache import store as cache_store
from ci_toolkit.cache.keys import key_dirname


@dataclass(frozen=True)
class Pruned:
    key: str
    what: str  # "generation", "temporary", "key"
    name: str
    reason: str


def _still_there(infos: list[cache_store.EntryInfo]) -> list[cache_store.EntryInfo]:
    """Described again after collection; an entry a concurrent prune removed is left out."""
    found = []
    for info in infos:
        try:
            found.append(cache_store.describe(info.path))
        except FileNotFoundError:
            continue
    return found


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
    infos = sorted(_still_there(infos), key=lambda i: i.last_used)
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
