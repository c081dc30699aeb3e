"""``run.caches``: directories of a run container kept between runs of the job, in the
toolkit's cache store beside the build caches (same root, same generations and atomic swap,
bounded by ``cache prune`` the same way), so they survive an engine wipe.

Each cache is keyed per project, step and cache name (``run-<project>-<step>-<name>``). Before
the command, the newest generation of the first key that has one is unpacked into the
container; the later keys of buildrunner's list are prefixes (the most recently used entry
whose key starts with one wins). The generation is hard-linked first, so garbage collection
can never pull it away mid-copy. After the command succeeds the directory is exported into a
fresh ``tmp-*`` of the first key's entry, verified, and swapped in; two jobs on one key each
swap in a complete generation, the last one wins, neither can corrupt the other.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ci_toolkit.cache import store
from ci_toolkit.cache.keys import key_dirname, validate_key
from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.report import Reporter

PREFIX = "run-"
_RESTORE = "restore.tar"


@dataclass
class RunCache:
    path: str
    """The directory in the container."""
    key: str
    session: store.Session
    restore: Path | None

    @property
    def save(self) -> Path:
        return self.session.export_dir / store.TREE_FILE


def cache_key(project: str, step: str, name: str) -> str:
    return validate_key(f"{PREFIX}{project}-{step}-{name}", source=f"run cache key {name!r}")


def open_caches(root: Path, project: str, step: str, caches: Mapping[str, Sequence[str]]) -> list[RunCache]:
    opened: list[RunCache] = []
    try:
        for path, names in caches.items():
            if not path.startswith("/") or not names:
                raise ToolkitError.bad_input(f"run.caches: {path!r} needs an absolute path and at least one key")
            keys = [cache_key(project, step, n) for n in names]
            session = store.open_session(root / key_dirname(keys[0]), keys[0], kind=store.TREE)
            restore = _link_restore(root, keys, session.export_dir / _RESTORE)
            opened.append(RunCache(path=path, key=keys[0], session=session, restore=restore))
    except BaseException:
        close_caches(opened)
        raise
    return opened


def _link_restore(root: Path, keys: Sequence[str], target: Path) -> Path | None:
    for index, key in enumerate(keys):
        candidates = [root / key_dirname(key)]
        if index > 0:
            candidates += _prefixed(root, key)
        for entry in candidates:
            if _link_current(entry, target):
                return target
    return None


def _prefixed(root: Path, prefix: str) -> list[Path]:
    """Entries whose key starts with ``prefix``, most recently used first."""
    found: list[tuple[float, Path]] = []
    with contextlib.suppress(OSError):
        for child in root.iterdir():
            key_file = child / "key"
            with contextlib.suppress(OSError):
                if key_file.read_text(encoding="utf-8").strip().startswith(prefix):
                    found.append(((child / "lock").stat().st_mtime, child))
    return [entry for _, entry in sorted(found, reverse=True)]


def _link_current(entry: Path, target: Path) -> bool:
    """Hard-link the current generation's tar (under the entry's shared lock, so GC, which
    needs the exclusive one, cannot remove the generation between resolving and linking)."""
    if not (entry / "lock").is_file():
        return False
    import fcntl

    with store.entry_lock(entry, fcntl.LOCK_SH):
        gen = store.current_generation(entry)
        if gen is None:
            return False
        try:
            os.link(gen / store.TREE_FILE, target)
        except OSError:
            return False
    return True


def commit_caches(caches: Sequence[RunCache], reporter: Reporter) -> None:
    """After success: each saved directory becomes its key's current generation."""
    for cache in caches:
        if cache.restore is not None:
            with contextlib.suppress(FileNotFoundError):
                cache.restore.unlink()
        if not cache.save.is_file():
            reporter.info(f"cache {cache.path}: nothing to save (the directory does not exist)")
            continue
        try:
            cache.session.commit()
        except (store.InvalidLayout, OSError) as exc:
            reporter.warning(f"cache {cache.path} not saved ({exc}); the previous one stays current")
            continue
        reporter.info(f"cache {cache.path}: saved as {cache.key}")


def close_caches(caches: Sequence[RunCache]) -> None:
    for cache in caches:
        cache.session.close()
