"""Start-up vs `python -c pass` (goal: at most 3x), for `--version` and for every command:
the time from the process's start to the command's first external call (a socket connect, a
subprocess, an exec), or to its end if it makes none (S-per-command).

An audit hook (sys.addaudithook, the interpreter's own tracing point) ends the process at the
first such event, so nothing external ever happens: no container starts, no registry is
written. Each command is given arguments that get it past parsing to real work; the row
fails if the process did not reach its first external call when it should have."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import CLI, Ratio, installed_env, interleaved, warm_bytecode

REPEAT = 15

# What the probe stops at. It writes the event to stdout so the benchmark can check it.
PROBE = """\
import os, sys
EXTERNAL = frozenset({"socket.connect", "subprocess.Popen", "os.posix_spawn", "os.exec", "os.system", "os.fork"})
def hook(event, args):
    if event in EXTERNAL:
        os.write(1, b"first external call: " + event.encode() + b"\\n")
        os._exit(0)
sys.addaudithook(hook)
from ci_toolkit.cli import main
sys.argv[0] = "ci-toolkit"
sys.exit(main())
"""

# command -> (arguments, whether it must reach an external call)
COMMANDS: dict[str, tuple[list[str], bool]] = {
    "version": (["version"], False),
    "config show": (["config", "show"], False),
    "expand-args": (["expand-args", "--build-arg A=1"], False),
    "cache ls": (["cache", "ls"], False),
    "pipeline plan": (["pipeline", "plan"], False),
    "mirror rewrite": (["mirror", "rewrite", "busybox"], False),
    "meta": (["meta", "--image", "app"], False),
    "doctor": (["doctor"], True),
    "setup-builder": (["setup-builder"], True),
    "build": (["build", "."], True),
    "run": (["run", "busybox", "--", "true"], True),
    "promote": (["promote", "127.0.0.1:9/app:build-2", "--tag", "latest"], True),
    "sweep": (["sweep", "--job-id", "bench-startup-never-created"], True),
}

PROJECT = """\
steps:
  app:
    build: {path: .}
"""


def run() -> list[Ratio]:
    env = installed_env()
    python = [sys.executable, "-c", "pass"]
    warm_bytecode()

    def bare() -> None:
        subprocess.run(python, check=True, capture_output=True, env=env)

    def version() -> None:
        subprocess.run([CLI, "--version"], check=True, capture_output=True, env=env)

    t_ours, t_bare = interleaved(version, bare, repeat=REPEAT)
    rows = [_row("startup: --version / python -c pass", t_ours, t_bare)]
    with tempfile.TemporaryDirectory(prefix="ci-toolkit-bench-startup-") as tmp:
        work = Path(tmp)
        (work / "Dockerfile").write_text("FROM busybox\n")
        (work / "ci-toolkit.yaml").write_text(PROJECT)
        cmd_env = installed_env({"CI_TOOLKIT_CACHE_ROOT": str(work / "cache"), "HOME": tmp})
        for name, (args, external) in COMMANDS.items():
            rows.append(_command_row(name, args, external, work, cmd_env, bare))
    return rows


def _command_row(name: str, args: list[str], external: bool, work: Path, env: dict[str, str], bare: object) -> Ratio:
    argv = [sys.executable, "-c", PROBE, *args]
    first = subprocess.run(argv, cwd=work, capture_output=True, text=True, env=env)
    reached = "first external call" in first.stdout
    if external and not reached:
        raise RuntimeError(f"{name}: no external call reached: exit {first.returncode}: {first.stderr.strip()}")

    def ours() -> None:
        subprocess.run(argv, cwd=work, capture_output=True, env=env)

    t_ours, t_bare = interleaved(ours, bare, repeat=REPEAT)  # type: ignore[arg-type]
    until = "first external call" if reached else "exit"
    return _row(f"S-per-command: {name} (to {until}) / python -c pass", t_ours, t_bare)


def _row(name: str, t_ours: float, t_bare: float) -> Ratio:
    return Ratio(name, t_ours / t_bare, "<= 3", f"{t_ours * 1000:.0f} ms", f"{t_bare * 1000:.0f} ms")
