"""Start-up vs `python -c pass` (goal: at most 3x, in CPU time), for `--version` and every command:
the time from the process's start to the command's first external call (a socket connect, a
subprocess, an exec), or to its end if it makes none (S-per-command).

An audit hook (sys.addaudithook, the interpreter's own tracing point) ends the process at the
first such event, so nothing external ever happens: no container starts, no registry is
written. Each command is given arguments that get it past parsing to real work; the row
fails if the process did not reach its first external call when it should have."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import CLI, Ratio, installed_env

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
    bare = [sys.executable, "-c", "pass"]
    rows = [_row("startup: --version / python -c pass", [CLI, "--version"], bare, env, None)]
    with tempfile.TemporaryDirectory(prefix="ci-toolkit-bench-startup-") as tmp:
        work = Path(tmp) / "project"
        work.mkdir()
        (work / "Dockerfile").write_text("FROM busybox\n")
        (work / "ci-toolkit.yaml").write_text(PROJECT)
        # HOME beside the project, not above it: run refuses to mount a home directory.
        cmd_env = installed_env({"CI_TOOLKIT_CACHE_ROOT": f"{tmp}/cache", "HOME": f"{tmp}/home"})
        for name, (args, external) in COMMANDS.items():
            argv = [sys.executable, "-c", PROBE, *args]
            first = subprocess.run(argv, cwd=work, capture_output=True, text=True, env=cmd_env)
            reached = "first external call" in first.stdout
            if external and not reached:
                raise RuntimeError(f"{name}: no external call reached: exit {first.returncode}: {first.stderr.strip()}")
            until = "first external call" if reached else "exit"
            rows.append(_row(f"S-per-command: {name} (to {until}) / python -c pass", argv, bare, cmd_env, work))
    return rows


def _row(name: str, argv: list[str], bare: list[str], env: dict[str, str], cwd: Path | None) -> Ratio:
    """Interleaved medians. The ratio is of CPU time (user + system, from wait4): on a shared
    machine under load a 70 ms process is preempted far more often than a 14 ms one, which
    inflates wall-clock ratios; the columns show both."""
    samples: dict[str, list[tuple[float, float]]] = {"ours": [], "bare": []}
    for _ in range(REPEAT):
        for side, command in (("ours", argv), ("bare", bare)):
            samples[side].append(_timed(command, env, cwd))
    wall = {k: statistics.median(w for w, _ in v) for k, v in samples.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in samples.items()}
    return Ratio(
        name,
        cpu["ours"] / cpu["bare"],
        "<= 3",
        f"{cpu['ours'] * 1000:.0f} ms CPU, {wall['ours'] * 1000:.0f} ms wall",
        f"{cpu['bare'] * 1000:.0f} ms CPU, {wall['bare'] * 1000:.0f} ms wall",
    )


def _timed(argv: list[str], env: dict[str, str], cwd: Path | None) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of argv."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0  # reaped above
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime
