"""Emulation on the test bed: a platform without a binfmt handler fails the build with exit 3
and the command that enables it (not BuildKit's exec format error); doctor names the same
command; setup-builder --emulation enables the handler with the host's qemu-user-static.

linux/s390x stands for "a platform with no handler": its base is a scratch image with a
64-byte s390x ELF header as /bin/sh, so RUN needs s390x emulation and nothing else."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import run_cli_process

HANDLER = Path("/proc/sys/fs/binfmt_misc/qemu-s390x")
HINT = "ci-toolkit setup-builder --emulation linux/s390x"


@pytest.fixture
def s390x_context(tmp_path: Path) -> Path:
    elf = bytes.fromhex("7f454c46020201000000000000000000" + "0002" + "0016") + bytes(100)
    (tmp_path / "sh").write_bytes(elf)
    (tmp_path / "sh").chmod(0o755)
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY sh /bin/sh\nRUN echo hi\n")
    return tmp_path


@pytest.fixture
def no_s390x() -> Iterator[None]:
    """The handler is off for the test (and left as it was found)."""
    was_on = HANDLER.is_file() and HANDLER.read_text().startswith("enabled")
    if was_on:
        subprocess.run(["update-binfmts", "--disable", "qemu-s390x"], check=True, capture_output=True)
    yield
    on = HANDLER.is_file() and HANDLER.read_text().startswith("enabled")
    if on != was_on:
        subprocess.run(["update-binfmts", "--enable" if was_on else "--disable", "qemu-s390x"], capture_output=True)


def test_build_without_emulation_exits_3_with_the_command(s390x_context: Path, no_s390x: None) -> None:
    result = run_cli_process(["build", str(s390x_context), "--platform", "linux/s390x", "--cache-backend", "none"])
    assert result.code == 3, result.err[-2000:]
    assert result.error_lines == [f"error: no emulation for linux/s390x on this host: run {HINT}"]
    assert "Traceback" not in result.err


def test_doctor_names_the_command(no_s390x: None) -> None:
    result = run_cli_process(["doctor", "--platform", "linux/s390x,linux/arm64"])
    assert result.code == 3
    assert result.error_lines == [f"error: emulation linux/s390x: no binfmt handler qemu-s390x; {HINT}"]


def test_setup_builder_emulation_dry_run_changes_nothing(no_s390x: None) -> None:
    result = run_cli_process(["setup-builder", "--emulation", "linux/s390x", "--dry-run"])
    assert result.code == 0, result.err
    assert "+ update-binfmts --enable qemu-s390x" in result.err
    assert not (HANDLER.is_file() and HANDLER.read_text().startswith("enabled"))


def test_setup_builder_emulation_enables_it_and_the_build_runs(s390x_context: Path, no_s390x: None) -> None:
    result = run_cli_process(["setup-builder", "--emulation", "linux/s390x"])
    assert result.code == 0, result.err
    assert HANDLER.read_text().startswith("enabled")
    again = run_cli_process(["setup-builder", "--emulation", "linux/s390x,linux/arm64"])
    assert again.code == 0 and "emulation ready" in again.out
    # The fake /bin/sh is no program, but the kernel now hands it to QEMU: no exec format error.
    build = run_cli_process(["build", str(s390x_context), "--platform", "linux/s390x", "--cache-backend", "none"])
    assert "exec format error" not in build.err
    assert "no emulation" not in build.err


def test_unknown_platform_is_bad_input() -> None:
    result = run_cli_process(["setup-builder", "--emulation", "linux/vax"])
    assert result.code == 2
    assert "no QEMU emulation known for linux/vax" in result.error_lines[0]
