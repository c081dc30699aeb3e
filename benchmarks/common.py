from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Ratio:
    name: str
    ratio: float
    goal: str
    ours: str
    baseline: str

    def met(self) -> bool:
        op, value = self.goal.split()
        return self.ratio <= float(value) if op == "<=" else self.ratio >= float(value)


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def interleaved(a: Callable[[], object], b: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median seconds of a and b, alternated so drift in machine load hits both alike."""
    sa: list[float] = []
    sb: list[float] = []
    for _ in range(repeat):
        for fn, samples in ((a, sa), (b, sb)):
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
    return statistics.median(sa), statistics.median(sb)


CLI = str(Path(sys.executable).with_name("ci-toolkit"))


def installed_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a process timed as a user runs it: pip compiles bytecode when it
    installs, so a development shell's PYTHONDONTWRITEBYTECODE would time the compiler instead
    (``__pycache__`` is ignored by git). Call ``warm_bytecode`` once before timing."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, **(extra or {})}


def warm_bytecode() -> None:
    import subprocess

    import ci_toolkit

    package = str(Path(ci_toolkit.__file__).parent)
    subprocess.run([sys.executable, "-m", "compileall", "-q", package], check=True, capture_output=True)
