"""The one subprocess wrapper: echo, masking, dry-run, failures."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ci_toolkit.core import proc
from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.report import Reporter


def _reporter(verbose: bool = False) -> tuple[Reporter, io.StringIO]:
    err = io.StringIO()
    rep = Reporter(stream=err, stdout=io.StringIO(), verbose=verbose)
    rep.add_secret("pa55word-xyz")
    return rep, err


def test_echoes_shell_quoted_and_masked_in_verbose_mode() -> None:
    rep, err = _reporter(verbose=True)
    result = proc.run(["sh", "-c", "echo out; echo 'pa55word-xyz leaked' >&2", "arg with space"], rep, capture=True)
    assert result.stdout == "out\n"
    text = err.getvalue()
    assert text.startswith("+ sh -c ")
    assert "'arg with space'" in text
    assert "pa55word-xyz" not in text
    assert "*** leaked" in text


def test_dry_run_echoes_and_runs_nothing(tmp_path: Path) -> None:
    rep, err = _reporter()
    marker = tmp_path / "marker"
    proc.run(["touch", str(marker)], rep, dry_run=True)
    assert not marker.exists()
    assert err.getvalue() == f"+ touch {marker}\n"


def test_failure_raises_with_the_last_stderr_line() -> None:
    rep, _ = _reporter()
    with pytest.raises(ToolkitError) as info:
        proc.run(["sh", "-c", "echo first >&2; echo 'the real reason' >&2; exit 4"], rep, what="demo step")
    assert info.value.exit_code == 1
    assert info.value.message == "demo step failed (exit 4): the real reason"


def test_missing_program_is_an_environment_error() -> None:
    rep, _ = _reporter()
    with pytest.raises(ToolkitError) as info:
        proc.run(["definitely-not-a-program-xyz"], rep)
    assert info.value.exit_code == 3


def test_quiet_silences_the_echo_but_not_in_dry_run() -> None:
    rep, err = _reporter()
    rep.quiet = True
    proc.run(["true"], rep, echo=True)
    assert err.getvalue() == ""
    proc.run(["true"], rep, echo=True, dry_run=True)
    assert err.getvalue() == "+ true\n"
