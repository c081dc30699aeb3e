"""Under CI=true a missing engine makes integration tests fail, never skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO


def test_integration_tests_fail_without_engine(tmp_path: Path) -> None:
    env = {**os.environ, "CI": "true", "DOCKER_HOST": f"unix://{tmp_path}/none.sock"}
    target = "tests/integration/build/test_doctor.py::test_doctor_table_is_human_readable"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", target],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stdout
    assert "1 error" in proc.stdout or "1 failed" in proc.stdout
    assert "skipped" not in proc.stdout
    assert "run scripts/bootstrap" in proc.stdout
