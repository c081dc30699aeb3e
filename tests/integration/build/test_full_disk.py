"""A full cache disk loses nothing: with the cache root on a 1 MiB tmpfs, a build whose cache
export does not fit still succeeds (the image is built), `current` keeps pointing where it
did, the temporary export is gone, one warning says so and the output says
cache-saved=false; with --cache-required the same build exits 1 with one error line."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import CliResult, run_cli_process

KEY = "full-disk"
ENV = {"CI": "", "GITHUB_ACTIONS": ""}


@pytest.fixture()
def tiny_root(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "cache"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(root)], check=True)
    try:
        # An earlier build that fitted: its generation is `current`.
        small = tmp_path / "small"
        small.mkdir()
        (small / "note.txt").write_text(uuid.uuid4().hex)
        (small / "Dockerfile").write_text("FROM scratch\nCOPY note.txt /\n")
        first = run_cli_process(["build", str(small), "--cache-root", str(root), "--cache-key", KEY], env=ENV)
        assert first.code == 0 and (root / KEY / "current").is_symlink(), first.err
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)


def _build(tmp_path: Path, root: Path, *extra: str) -> tuple[CliResult, str]:
    tag = f"ci-toolkit-tests/full-disk:{uuid.uuid4().hex[:10]}"
    context = tmp_path / f"ctx-{uuid.uuid4().hex[:6]}"
    context.mkdir()
    # 3 MB of random data: the layer (and so the cache export) cannot fit in 1 MiB.
    (context / "Dockerfile").write_text(
        f"FROM busybox\nRUN echo {uuid.uuid4().hex} && head -c 3000000 /dev/urandom > /big\n"
    )
    outputs = tmp_path / f"outputs-{uuid.uuid4().hex[:6]}.env"
    try:
        result = run_cli_process(
            ["build", str(context), "-t", tag, "--cache-root", str(root), "--cache-key", KEY, *extra],
            env={**ENV, "CI_TOOLKIT_OUTPUTS_FILE": str(outputs)},
        )
        built = subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0
    finally:
        subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True)
    if result.code == 0:
        assert built, "the image result did not stand"
    return result, outputs.read_text() if outputs.exists() else ""


def test_full_cache_disk_keeps_current_and_the_image(tmp_path: Path, tiny_root: Path) -> None:
    entry = tiny_root / KEY
    before = os.readlink(entry / "current")
    result, outputs = _build(tmp_path, tiny_root)
    assert result.code == 0, result.err
    warnings = [ln for ln in result.err.splitlines() if ln.startswith("warning: cache not saved")]
    assert len(warnings) == 1, result.err
    assert f"cache not saved for {KEY}: no space left on {tiny_root} (" in warnings[0]
    assert warnings[0].endswith("MiB free); the image was built")
    assert "CI_TOOLKIT_CACHE_SAVED=false" in outputs
    assert os.readlink(entry / "current") == before
    assert not [p.name for p in entry.iterdir() if p.name.startswith(("tmp-", "del-"))]
    assert "Traceback" not in result.err


def test_cache_required_fails_with_one_line(tmp_path: Path, tiny_root: Path) -> None:
    entry = tiny_root / KEY
    before = os.readlink(entry / "current")
    result, _ = _build(tmp_path, tiny_root, "--cache-required")
    assert result.code == 1, result.err
    errors = [ln for ln in result.err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and f"cache not saved for {KEY}: no space left on" in errors[0], result.err
    assert os.readlink(entry / "current") == before
    assert not [p.name for p in entry.iterdir() if p.name.startswith(("tmp-", "del-"))]
