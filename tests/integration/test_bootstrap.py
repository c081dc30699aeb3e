"""A second run of the project's own setup on a ready machine checks and installs nothing."""

from __future__ import annotations

import subprocess

from tests.helpers import REPO


def _run(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, text=True, timeout=600)


def test_bootstrap_on_a_ready_machine_installs_and_starts_nothing() -> None:
    proc = _run("scripts/bootstrap")
    assert proc.returncode == 0, proc.stderr
    assert "installing" not in proc.stderr
    assert "starting" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("bootstrap: ready")


def test_venv_is_not_reinstalled_when_pyproject_is_unchanged() -> None:
    proc = _run(". scripts/lib/venv.sh && ensure_venv")
    assert proc.returncode == 0, proc.stderr
    assert "installing" not in proc.stderr


def test_arm64_emulation_runs_busybox_from_the_offline_hub() -> None:
    proc = subprocess.run(
        ["docker", "run", "--rm", "--platform", "linux/arm64", "busybox", "uname", "-m"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.stdout.strip() == "aarch64", proc.stderr
