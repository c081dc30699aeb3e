"""`ci-toolkit --version` start-up time vs `python -c pass` (goal: at most 3x)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.common import Ratio, interleaved


def run() -> list[Ratio]:
    def ours() -> None:
        # The console script, as CI scripts call it.
        subprocess.run(
            [str(Path(sys.executable).with_name("ci-toolkit")), "--version"], check=True, capture_output=True
        )

    def bare() -> None:
        subprocess.run([sys.executable, "-c", "pass"], check=True, capture_output=True)

    t_ours, t_bare = interleaved(ours, bare, repeat=15)
    return [
        Ratio(
            "startup: --version / python -c pass",
            t_ours / t_bare,
            "<= 3",
            f"{t_ours * 1000:.0f} ms",
            f"{t_bare * 1000:.0f} ms",
        )
    ]
