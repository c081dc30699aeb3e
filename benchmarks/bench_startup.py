"""`ci-toolkit --version` start-up time vs `python -c pass` (goal: at most 3x)."""

from __future__ import annotations

import subprocess
import sys

from benchmarks.common import Ratio, interleaved


def run() -> list[Ratio]:
    def ours() -> None:
        subprocess.run([sys.executable, "-m", "ci_toolkit", "--version"], check=True, capture_output=True)

    def bare() -> None:
        subprocess.run([sys.executable, "-c", "pass"], check=True, capture_output=True)

    t_ours, t_bare = interleaved(ours, bare, repeat=15)
    return [Ratio("startup: --version / python -c pass", t_ours / t_bare, "<= 3", f"{t_ours*1000:.0f} ms", f"{t_bare*1000:.0f} ms")]
