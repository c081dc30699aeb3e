"""The last-resort handler in ``cli.main``: an unexpected exception is one `error:` line
naming where the traceback went, exit 1; ``--debug`` / CI_TOOLKIT_DEBUG=1 print it instead."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from ci_toolkit.commands import version
from tests.helpers import run_cli


@pytest.fixture
def broken_version(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(args: argparse.Namespace, app: object) -> int:
        raise ValueError("boom with secret s3cr3t-value")

    monkeypatch.setattr(version, "run", boom)


@pytest.mark.usefixtures("broken_version")
def test_unexpected_exception_is_one_line_and_a_traceback_file(tmp_path: Path) -> None:
    result = run_cli(
        ["version"], env={"TMPDIR": str(tmp_path), "CI_TOOLKIT_REGISTRY_PASSWORD": "s3cr3t-value"}, cwd=tmp_path
    )
    assert result.code == 1
    assert len(result.error_lines) == 1, result.err
    line = result.error_lines[0]
    assert line.startswith("error: internal error: ValueError: boom")
    assert "Traceback" not in result.err
    assert "s3cr3t-value" not in result.err
    match = re.search(r"traceback in (\S+)\)", line)
    assert match, line
    saved = Path(match.group(1)).read_text()
    assert saved.startswith("Traceback") and "ValueError" in saved
    assert "s3cr3t-value" not in saved


@pytest.mark.usefixtures("broken_version")
@pytest.mark.parametrize(("argv", "env"), [(["--debug", "version"], {}), (["version"], {"CI_TOOLKIT_DEBUG": "1"})])
def test_debug_prints_the_traceback(tmp_path: Path, argv: list[str], env: dict[str, str]) -> None:
    result = run_cli(argv, env={"TMPDIR": str(tmp_path), **env}, cwd=tmp_path)
    assert result.code == 1
    assert "Traceback (most recent call last)" in result.err
    assert result.error_lines == ["error: internal error: ValueError: boom with secret s3cr3t-value"]
    assert list(tmp_path.glob("ci-toolkit-traceback-*")) == []
