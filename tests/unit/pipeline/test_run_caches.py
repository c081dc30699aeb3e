"""Run caches in the cache store: restored from the first key with a generation (later keys
as prefixes), saved only when the export is a complete tar, swapped atomically."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from ci_toolkit.cache import store
from ci_toolkit.core.report import Reporter
from ci_toolkit.pipeline.run_caches import close_caches, commit_caches, open_caches


def _tar(path: Path, content: bytes) -> None:
    with tarfile.open(path, "w") as archive:
        info = tarfile.TarInfo("cache/data.txt")
        info.size = len(content)
        archive.addfile(info, io.BytesIO(content))


def _save(root: Path, names: list[str], content: bytes | None) -> None:
    caches = open_caches(root, "proj", "step", {"/c": names})
    try:
        if content is not None:
            _tar(caches[0].save, content)
        commit_caches(caches, Reporter(quiet=True, stream=io.StringIO()))
    finally:
        close_caches(caches)


def _restored(root: Path, names: list[str]) -> bytes | None:
    caches = open_caches(root, "proj", "step", {"/c": names})
    try:
        if caches[0].restore is None:
            return None
        with tarfile.open(caches[0].restore) as archive:
            member = archive.extractfile("cache/data.txt")
            return member.read() if member else None
    finally:
        close_caches(caches)


def test_saved_cache_is_restored_next_time(tmp_path: Path) -> None:
    assert _restored(tmp_path, ["k-1"]) is None
    _save(tmp_path, ["k-1"], b"one")
    assert _restored(tmp_path, ["k-1"]) == b"one"
    _save(tmp_path, ["k-1"], b"two")
    assert _restored(tmp_path, ["k-1"]) == b"two"


def test_later_keys_are_prefixes(tmp_path: Path) -> None:
    _save(tmp_path, ["k-old"], b"old")
    assert _restored(tmp_path, ["k-new", "k-"]) == b"old"
    assert _restored(tmp_path, ["k-new", "other-"]) is None


def test_a_broken_export_never_becomes_current(tmp_path: Path) -> None:
    _save(tmp_path, ["k"], b"good")
    caches = open_caches(tmp_path, "proj", "step", {"/c": ["k"]})
    caches[0].save.write_bytes(b"not a tar" * 100)
    commit_caches(caches, Reporter(quiet=True, stream=io.StringIO()))
    close_caches(caches)
    assert _restored(tmp_path, ["k"]) == b"good"
    assert not list(tmp_path.glob("*/tmp-*"))  # the failed export was discarded


def test_nothing_saved_keeps_the_previous_generation(tmp_path: Path) -> None:
    _save(tmp_path, ["k"], b"kept")
    _save(tmp_path, ["k"], None)
    assert _restored(tmp_path, ["k"]) == b"kept"
    entry = next(tmp_path.glob("run-proj-step-k"))
    store.verify_tree(entry / "current")
