"""Shared test helpers: run the CLI in-process with a given environment and directory."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from ci_toolkit.cli import main

REPO = Path(__file__).resolve().parent.parent


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if ln.startswith("error:")]


def run_cli(args: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None) -> CliResult:
    """In-process: fast, and the unit guard still applies."""
    out, err = io.StringIO(), io.StringIO()
    # A home beside the working directory, not the directory itself: `run` refuses to mount the
    # home directory (or a directory above it), and the default workdir is the current one.
    home = cwd.parent / f"{cwd.name}.home" if cwd is not None else REPO
    base_env = {"HOME": str(home), "PATH": os.environ.get("PATH", "")}
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(args), env={**base_env, **(env or {})}, cwd=cwd)
    return CliResult(code, out.getvalue(), err.getvalue())


def run_cli_process(
    args: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 600
) -> CliResult:
    """As a real process, as a CI job would run it."""
    proc = subprocess.run(
        [sys.executable, "-m", "ci_toolkit", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=timeout,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def load_script(path: Path, name: str) -> ModuleType:
    """A standard-library script without a .py suffix (scripts/ci-action, ...) as a module."""
    import importlib.machinery
    import importlib.util

    loader = importlib.machinery.SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_loader(name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module
