"""`RUN --mount=type=cache` content kept in the cache store across engine wipes, and the
warm path's bookkeeping (an unchanged rebuild commits nothing), on the real engine.

These tests wipe the engine's build cache (`docker buildx prune -af`): run them against an
engine of your own (DOCKER_HOST=unix:///run/ci-toolkit-engines/NAME/docker.sock); CI runs
them serially on its own engine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ci_toolkit.cache import mounts as cache_mounts
from ci_toolkit.cache import store as cache_store

from .test_build_cache import clean_env, engine_wipe, result_of, toolkit


def _project(tmp_path: Path, mount_id: str, body: str, target: str = "/c") -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(
        "ARG DOCKER_REGISTRY=docker.io\nFROM ${DOCKER_REGISTRY}/library/busybox\nARG N=1\n"
        f"RUN --mount=type=cache,id={mount_id},target={target},sharing=locked {body}\n"
    )
    return ctx


def _build(ctx: Path, root: Path, key: str, n: str, *extra: str, **env: str) -> dict[str, object]:
    args = ["build", "--json", "--cache-root", str(root), "--cache-key", key, "--build-arg", f"N={n}", *extra]
    return result_of(toolkit([*args, "--extra-args", "--output type=cacheonly", "."], clean_env(**env), ctx))


def _cache(result: dict[str, object]) -> dict[str, object]:
    cache = result["cache"]
    assert isinstance(cache, dict)
    return cache


def test_a_cache_mount_file_survives_an_engine_wipe(tmp_path: Path) -> None:
    mount_id = f"ci-toolkit-test-{uuid.uuid4().hex[:8]}"
    ctx = _project(tmp_path, mount_id, 'echo "written in build $N" >> /c/log && cat /c/log > /seen')
    root, key = tmp_path / "root", "mounts"
    first = _cache(_build(ctx, root, key, "1"))
    assert first["mounts"] == [mount_id] and first["mounts_state"] == "saved"
    assert int(str(first["mounts_saved_bytes"])) > 0
    engine_wipe([])
    # Build 2 on the wiped engine: its RUN reads the file build 1 wrote into the cache mount.
    ctx2 = _project(tmp_path, mount_id, "cat /c/log > /seen && grep -q 'written in build 1' /c/log")
    second = _cache(_build(ctx2, root, key, "2"))
    # It only read the cache: nothing new to save, the generation keeps build 1's content.
    assert second["mounts_state"] == "restored, unchanged"
    assert second["mounts_restored_bytes"] == first["mounts_saved_bytes"]
    listing = result_of(toolkit(["cache", "ls", "--json", "--cache-root", str(root)], clean_env(), ctx))
    entries = listing["entries"]
    assert isinstance(entries, list)
    assert entries[0]["mounts"] == [{"key": mount_id, "size": second["mounts_saved_bytes"]}]


def test_a_rebuild_saves_only_what_changed_and_the_restore_adds_it_up(tmp_path: Path) -> None:
    mount_id = f"ci-toolkit-test-{uuid.uuid4().hex[:8]}"
    root, key = tmp_path / "root", "delta"
    # Build 1: a large file that stays, one that changes, one that goes.
    ctx = _project(
        tmp_path, mount_id, "head -c 3000000 /dev/urandom > /c/big && echo one > /c/edit && echo x > /c/gone"
    )
    first = _cache(_build(ctx, root, key, "1"))
    assert first["mounts_state"] == "saved"
    engine_wipe([])
    ctx = _project(
        tmp_path, mount_id, "sleep 1 && echo two > /c/edit && rm /c/gone && mkdir -p /c/d && echo 3 > /c/d/new"
    )
    # Temporary files on another filesystem than the cache root (a tmpfs), as on many runners.
    second = _cache(_build(ctx, root, key, "2", TMPDIR="/dev/shm"))
    assert second["mounts_state"] == "restored, saved"
    saved = cache_mounts.read_index(cache_store.current_generation(root / key))
    assert len(saved[0].parts) == 2, "the rebuild added a delta to the base"
    delta = cache_store.current_generation(root / key) / "mounts" / saved[0].parts[1]  # type: ignore[operator]
    assert delta.stat().st_size < 100_000, "the delta holds the changed files, not the large one that stayed"
    engine_wipe([])
    # Build 3 on a wiped engine sees build 2's content: changed, added and deleted alike.
    check = (
        "test $(cat /c/edit) = two && test ! -e /c/gone && test $(cat /c/d/new) = 3 && test $(wc -c < /c/big) = 3000000"
    )
    third = _cache(_build(_project(tmp_path, mount_id, check), root, key, "3"))
    assert third["mounts_state"] == "restored, unchanged", "nothing changed in the cache: no new part"
    saved = cache_mounts.read_index(cache_store.current_generation(root / key))
    assert len(saved[0].parts) == 2


def test_apts_binary_caches_are_left_out_and_its_archives_kept(tmp_path: Path) -> None:
    mount_id = f"ci-toolkit-test-{uuid.uuid4().hex[:8]}"
    root, key = tmp_path / "root", "apt"

    # apt rewrites pkgcache.bin on every run and rebuilds it when missing: not worth a delta.
    write = "mkdir -p /var/cache/apt/archives && echo deb > /var/cache/apt/archives/a.deb"
    body = f"{write} && head -c 500000 /dev/urandom > /var/cache/apt/pkgcache.bin"
    _build(_project(tmp_path, mount_id, body, "/var/cache/apt"), root, key, "1")
    engine_wipe([])
    check = "test $(cat /var/cache/apt/archives/a.deb) = deb && test ! -e /var/cache/apt/pkgcache.bin"
    second = _cache(_build(_project(tmp_path, mount_id, check, "/var/cache/apt"), root, key, "2"))
    assert second["mounts_state"] == "restored, unchanged"
    assert int(str(second["mounts_restored_bytes"])) < 100_000


def test_a_build_without_cache_mounts_setting_none_saves_none(tmp_path: Path) -> None:
    mount_id = f"ci-toolkit-test-{uuid.uuid4().hex[:8]}"
    ctx = _project(tmp_path, mount_id, "echo $N > /c/n")
    root = tmp_path / "root"
    result = _cache(_build(ctx, root, "none", "1", "--set", "cache-mounts=none"))
    assert result["mounts"] == [] and result["mounts_state"] == "none"
    assert not (root / "none" / "current" / "mounts").exists()


def test_an_unchanged_rebuild_commits_no_new_generation(tmp_path: Path) -> None:
    mount_id = f"ci-toolkit-test-{uuid.uuid4().hex[:8]}"
    ctx = _project(tmp_path, mount_id, "echo $N >> /c/log")
    root, key = tmp_path / "root", "same"
    first = _cache(_build(ctx, root, key, "1"))
    assert first["export"] == "committed"
    engine_wipe([])
    again = _cache(_build(ctx, root, key, "1"))
    assert again["export"] == "unchanged", "everything came from the cache: nothing new to keep"
    assert again["generation"] == first["generation"]
    assert again["mounts_state"] == "restored, carried"
    assert [p.name for p in (root / key).glob("gen-*")] == [first["generation"]]
    assert not list((root / key).glob("tmp-*"))


def test_concurrent_builds_with_cache_mounts_keep_the_store_valid(tmp_path: Path) -> None:
    mount_id = f"ci-toolkit-test-{uuid.uuid4().hex[:8]}"
    ctx = _project(tmp_path, mount_id, "echo $N >> /c/log")
    root, key = tmp_path / "root", "concurrent"

    def one(i: int) -> dict[str, object]:
        return _build(ctx, root, key, f"{i}-{uuid.uuid4().hex[:6]}")

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(one, range(6)))
    assert all(_cache(r)["export"] == "committed" for r in results)
    current = cache_store.current_generation(root / key)
    assert current is not None and cache_store.verify_layout(current)
    saved = cache_mounts.read_index(current)
    assert [s.key for s in saved] == [mount_id]
    listed = subprocess.run(["tar", "-tf", str(current / "mounts" / saved[0].file)], capture_output=True, text=True)
    assert "./log" in listed.stdout.split()
    assert not list((root / key).glob("tmp-*"))


def test_sigkill_during_the_mount_export_keeps_current(tmp_path: Path) -> None:
    mount_id = f"ci-toolkit-test-{uuid.uuid4().hex[:8]}"
    # A cache mount big enough that packing it takes a while.
    ctx = _project(tmp_path, mount_id, "echo $N > /c/n && head -c 300000000 /dev/urandom > /c/big")
    root, key = tmp_path / "root", "killed"
    entry = root / key
    first = _cache(_build(ctx, root, key, "1"))
    before = cache_store.current_generation(entry)
    assert before is not None and first["mounts_state"] == "saved"

    args = ["build", "--cache-root", str(root), "--cache-key", key, "--build-arg", "N=2"]
    victim = subprocess.Popen(
        [sys.executable, "-m", "ci_toolkit", "-v", *args, "--extra-args", "--output type=cacheonly", "."],
        env=clean_env(),
        cwd=ctx,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert victim.stderr is not None
    saw_helper = False
    deadline = time.monotonic() + 240
    for line in victim.stderr:
        if "echo save" in line:  # the save helper's RUN has started packing
            saw_helper = True
            break
        if time.monotonic() > deadline:
            break
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    assert saw_helper, "the build was killed while it exported its cache mounts"
    assert cache_store.current_generation(entry) == before
    assert cache_store.verify_layout(before)
    assert [s.key for s in cache_mounts.read_index(before)] == [mount_id]
    after = _cache(_build(ctx, root, key, "3"))
    assert after["export"] == "committed"
    time.sleep(0.5)
    assert not list(entry.glob("tmp-*")), "the next build reaped the killed export"
