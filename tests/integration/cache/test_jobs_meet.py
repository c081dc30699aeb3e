"""Two jobs on one runner at once, as real processes: two `setup-builder` for one builder
(serialised by its flock: one creates, one reuses, the builder is there and intact) and two
`cache prune` over one root (both exit 0, everything removed once, nothing re-created)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from tests.unit.cache.test_concurrency import _entries, _tree


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "CI": "", "GITHUB_ACTIONS": ""}
    return subprocess.Popen(
        [sys.executable, "-m", "ci_toolkit", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
    )  # fmt: skip


def test_two_setup_builders_at_once(tmp_path: Path) -> None:
    name = f"ci-toolkit-test-{uuid.uuid4().hex[:8]}"
    args = ["setup-builder", "--name", name, "--state-dir", str(tmp_path / "state"), "--json"]
    try:
        procs = [_start(args, tmp_path) for _ in range(2)]
        outputs = [p.communicate(timeout=300) for p in procs]
        results = [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs, strict=True)]
        for code, _out, err in results:
            assert code == 0, err
        actions = sorted(json.loads(out)["action"] for _code, out, _err in results)
        assert actions == ["created", "reused"]
        inspect = subprocess.run(["docker", "buildx", "inspect", name], capture_output=True, text=True)
        assert inspect.returncode == 0 and "docker-container" in inspect.stdout, inspect.stderr
    finally:
        subprocess.run(["docker", "buildx", "rm", name], capture_output=True)


def test_two_cache_prunes_at_once(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    _entries(root, 40)
    args = ["cache", "prune", "--cache-root", str(root), "--max-size", "0", "--max-age", "0s", "--grace", "0s"]
    procs = [_start(args, tmp_path) for _ in range(2)]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    assert _tree(root) == set()
