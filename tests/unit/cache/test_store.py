"""The cache store on a real filesystem with hand-made OCI layouts (no engine needed)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from ci_toolkit.cache import store as cache_store
from ci_toolkit.cache.prune import prune


def _blob(layout: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256"
    path.mkdir(parents=True, exist_ok=True)
    (path / digest).write_bytes(data)
    return {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": f"sha256:{digest}", "size": len(data)}


def write_layout(layout: Path, *layers: bytes) -> None:
    """What buildx's local cache exporter writes: index.json -> an index of layers + config."""
    descs = [_blob(layout, data) for data in layers]
    index = {"schemaVersion": 2, "manifests": descs}
    raw = json.dumps(index).encode()
    top = _blob(layout, raw)
    top["mediaType"] = "application/vnd.oci.image.index.v1+json"
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))


def build_once(entry: Path, *layers: bytes, grace: float = 0) -> Path:
    session = cache_store.open_session(entry, "k", grace=grace)
    try:
        write_layout(session.export_dir, *layers)
        return session.commit()
    finally:
        session.close()


def test_first_commit_creates_current(tmp_path: Path) -> None:
    entry = tmp_path / "k"
    gen = build_once(entry, b"one")
    assert cache_store.current_generation(entry) == gen
    assert len(cache_store.verify_layout(gen)) == 2
    assert (entry / "key").read_text().strip() == "k"
    assert not list(entry.glob("tmp-*"))


def test_next_session_reads_current_and_is_seeded_with_links(tmp_path: Path) -> None:
    entry = tmp_path / "k"
    gen = build_once(entry, b"one", b"two")
    session = cache_store.open_session(entry, "k")
    try:
        assert session.source == gen
        seeded = sorted(p.name for p in (session.export_dir / "blobs" / "sha256").iterdir())
        assert seeded == sorted(p.name for p in (gen / "blobs" / "sha256").iterdir())
        some = next((session.export_dir / "blobs" / "sha256").iterdir())
        assert some.stat().st_ino == (gen / "blobs" / "sha256" / some.name).stat().st_ino
    finally:
        session.close()
    assert not list(entry.glob("tmp-*")), "an uncommitted export is discarded"
    assert cache_store.current_generation(entry) == gen


def test_unreferenced_blobs_are_dropped_so_size_stays_bounded(tmp_path: Path) -> None:
    entry = tmp_path / "k"
    for i in range(20):
        build_once(entry, b"base" * 1000, f"changing layer {i}".encode() * 1000)
    gens = list(entry.glob("gen-*"))
    assert len(gens) == 1
    assert len(list((gens[0] / "blobs" / "sha256").iterdir())) == 3


def test_invalid_export_leaves_current_untouched(tmp_path: Path) -> None:
    entry = tmp_path / "k"
    gen = build_once(entry, b"good")
    session = cache_store.open_session(entry, "k")
    write_layout(session.export_dir, b"bad")
    victim = next(p for p in (session.export_dir / "blobs" / "sha256").iterdir() if p.read_bytes() == b"bad")
    victim.unlink()
    with pytest.raises(cache_store.InvalidLayout, match="missing blob"):
        session.commit()
    session.close()
    assert cache_store.current_generation(entry) == gen
    assert not list(entry.glob("tmp-*"))


@pytest.mark.parametrize(
    "content",
    ["", "not json", '{"manifests": 3}', '{"manifests": [{"digest": "md5:x"}]}', '{"manifests": [{"digest": 7}]}'],
)
def test_verify_rejects_broken_index(tmp_path: Path, content: str) -> None:
    (tmp_path / "index.json").write_text(content)
    with pytest.raises(cache_store.InvalidLayout):
        cache_store.verify_layout(tmp_path)


def test_verify_rejects_wrong_size(tmp_path: Path) -> None:
    write_layout(tmp_path, b"layer")
    blob = next(p for p in (tmp_path / "blobs" / "sha256").iterdir() if p.read_bytes() == b"layer")
    blob.write_bytes(b"layer!")
    with pytest.raises(cache_store.InvalidLayout, match="expected"):
        cache_store.verify_layout(tmp_path)


def test_generation_in_use_is_not_collected(tmp_path: Path) -> None:
    entry = tmp_path / "k"
    first = build_once(entry, b"one")
    reader = cache_store.open_session(entry, "k")  # holds a shared lock on `first`
    try:
        build_once(entry, b"two")
        assert first.is_dir(), "a generation someone reads is kept"
        prune(tmp_path, max_size=0, max_age=0, grace=0)
        assert first.is_dir(), "not even prune removes it"
    finally:
        reader.close()
    cache_store.collect(entry, grace=0)
    assert not first.exists()


def test_grace_period_keeps_young_generations(tmp_path: Path) -> None:
    entry = tmp_path / "k"
    build_once(entry, b"one", grace=3600)
    build_once(entry, b"two", grace=3600)
    assert len(list(entry.glob("gen-*"))) == 2
    cache_store.collect(entry, grace=0)
    assert len(list(entry.glob("gen-*"))) == 1


def test_orphaned_export_is_reaped_but_a_live_one_is_not(tmp_path: Path) -> None:
    entry = tmp_path / "k"
    build_once(entry, b"one")
    orphan = entry / "tmp-999999-dead"
    (orphan / "blobs").mkdir(parents=True)  # no owner holds its lock: its build was killed
    live = cache_store.open_session(entry, "k")
    try:
        got = cache_store.collect(entry, grace=0)
        assert got.temporaries == ("tmp-999999-dead",)
        assert not orphan.exists() and live.export_dir.is_dir()
    finally:
        live.close()


def test_legacy_raw_layout_is_read_then_replaced(tmp_path: Path) -> None:
    entry = tmp_path / "asan"
    write_layout(entry, b"old raw cache")
    (entry / "blobs" / "sha256" / ("0" * 64)).write_bytes(b"garbage from earlier exports")
    (entry / "lock").touch()
    session = cache_store.open_session(entry, "asan")
    assert session.source == entry
    write_layout(session.export_dir, b"new")
    gen = session.commit()
    session.close()
    assert cache_store.current_generation(entry) == gen
    assert not (entry / "index.json").exists() and not (entry / "blobs").exists()


def test_prune_lru_and_age(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    build_once(old, os.urandom(50_000))
    build_once(new, os.urandom(50_000))
    past = time.time() - 3600
    os.utime(old / "lock", (past, past))
    assert sorted(i.path.name for i in cache_store.entries(tmp_path)) == ["new", "old"]
    size_one = cache_store.describe(new).size
    dry = prune(tmp_path, max_size=size_one + 10, max_age=86400, dry_run=True)
    assert [p.name for p in dry] == ["old"] and old.is_dir()
    done = prune(tmp_path, max_size=size_one + 10, max_age=86400)
    assert [p.name for p in done] == ["old"] and not old.exists() and new.is_dir()
    assert prune(tmp_path, max_size=10**12, max_age=60) == []
    os.utime(new / "lock", (past, past))
    assert [p.name for p in prune(tmp_path, max_size=10**12, max_age=60)] == ["new"]


def test_an_export_equal_to_current_is_unchanged(tmp_path: Path) -> None:
    entry = tmp_path / "k"
    gen = build_once(entry, b"one", b"two")
    same = cache_store.open_session(entry, "k")
    try:
        write_layout(same.export_dir, b"one", b"two")
        assert same.unchanged()
    finally:
        same.close()
    assert cache_store.current_generation(entry) == gen
    assert not list(entry.glob("tmp-*"))
    other = cache_store.open_session(entry, "k")
    try:
        write_layout(other.export_dir, b"one", b"three")
        assert not other.unchanged()
    finally:
        other.close()
