"""`ci-toolkit run` follows `docker run`: 127 for a command that is not found, 126 for one
that cannot be executed (with the engine's reason on one `error:` line); options between
IMAGE and `--` are options; without `--` everything after IMAGE is the command. Nothing is
left behind on any of these paths."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import run_cli
from tests.integration.containers.helpers import force_remove, nothing, resources


@pytest.fixture()
def job() -> Iterator[str]:
    job_id = f"test-likedocker-{uuid.uuid4().hex[:8]}"
    yield job_id
    force_remove(f"ci-toolkit.job-id={job_id}")


def _run(job: str, tmp_path: Path, *argv: str) -> tuple[int, str, str]:
    result = run_cli(["run", "--set", f"job-id={job}", *argv], cwd=tmp_path)
    assert "Traceback" not in result.err
    assert not any(ln.startswith("error: internal error") for ln in result.error_lines), result.err
    assert nothing(resources(f"ci-toolkit.job-id={job}")), "resources left behind"
    return result.code, result.out, result.err


def test_command_not_found_is_127(job: str, tmp_path: Path) -> None:
    code, _, err = _run(job, tmp_path, "busybox", "nosuchcmd-ci-toolkit")
    assert code == 127, err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "nosuchcmd-ci-toolkit" in errors[0] and "not found" in errors[0], err


def test_not_executable_is_126(job: str, tmp_path: Path) -> None:
    (tmp_path / "script.sh").write_text("#!/bin/sh\necho hi\n")
    (tmp_path / "script.sh").chmod(0o644)
    code, _, err = _run(job, tmp_path, "busybox", "--", "/workspace/script.sh")
    assert code == 126, err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "permission denied" in errors[0], err


def test_options_between_image_and_double_dash(job: str, tmp_path: Path) -> None:
    code, out, err = _run(
        job,
        tmp_path,
        "busybox",
        "--env",
        "GREETING=hello",
        "--pull-policy",
        "never",
        "--",
        "sh",
        "-c",
        "echo $GREETING",
    )
    assert code == 0, err
    assert out.strip() == "hello"


def test_without_double_dash_everything_after_image_is_the_command(job: str, tmp_path: Path) -> None:
    code, out, err = _run(job, tmp_path, "busybox", "echo", "--env", "x")
    assert code == 0, err
    assert out.strip() == "--env x"


def test_bad_option_after_image_is_bad_input(job: str, tmp_path: Path) -> None:
    code, _, err = _run(job, tmp_path, "busybox", "--pull-policy", "sometimes", "--", "true")
    assert code == 2, err
