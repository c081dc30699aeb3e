"""Where jobs meet on one runner: two prunes at once both succeed and remove everything
once; `cache ls` (describe) creates nothing; `setup-builder --dry-run` runs nothing."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from ci_toolkit.cache import store
from ci_toolkit.cache.prune import prune
from tests.helpers import run_cli


def _entries(root: Path, count: int) -> None:
    for n in range(count):
        entry = root / f"key{n}"
        for gen in ("gen-00000000000000000001-aaaa", "gen-00000000000000000002-bbbb"):
            (entry / gen / "blobs" / "sha256").mkdir(parents=True)
            (entry / gen / "index.json").write_text('{"manifests": []}')
        (entry / "current").symlink_to("gen-00000000000000000002-bbbb")
        (entry / "tmp-1-dead").mkdir()
        (entry / "key").write_text(f"key{n}\n")
        (entry / "lock").write_text("")
        os.utime(entry / "lock", (0, 0))


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _prune_twice_at_once(root: Path) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def run() -> None:
        start.wait()
        try:
            prune(root, max_size=0, max_age=0, grace=0)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_two_prunes_at_once_both_succeed(tmp_path: Path) -> None:
    for n in range(5):
        root = tmp_path / f"root{n}"
        _entries(root, 12)
        assert _prune_twice_at_once(root) == []
        assert _tree(root) == set(), "something was left (or re-created) by the concurrent prunes"


def test_cache_ls_creates_nothing(tmp_path: Path) -> None:
    root = tmp_path / "c"
    _entries(root, 3)
    # A generation that vanished between listing and locking must not come back as a file.
    (root / "key0" / "current").unlink()
    before = _tree(root)
    result = run_cli(["cache", "ls", "--cache-root", str(root), "--json"], cwd=tmp_path)
    assert result.code == 0, result.err
    assert _tree(root) == before
    assert store.entries(tmp_path / "missing") == [] and not (tmp_path / "missing").exists()


def test_setup_builder_dry_run_runs_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    # The unit guard fails this test if anything (buildx inspect included) were run.
    result = run_cli(
        ["--dry-run", "setup-builder", "--name", "ci-toolkit-dry", "--state-dir", str(state)], cwd=tmp_path
    )
    assert result.code == 0, result.err
    assert "docker buildx create --name ci-toolkit-dry" in result.err
    assert not state.exists()
