from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
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
    (``__pycache__`` is ignored by git). The bytecode itself is compiled by ``scripts/bench``'s
    ``ensure_venv`` (``scripts/lib/venv.sh``), as pip compiles it."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, **(extra or {})}


def job_env(**extra: str) -> dict[str, str]:
    """A CI job's environment: nothing from this machine's that could change a build, but the
    engine from DOCKER_HOST (a private engine for the benchmarks that wipe it; default: the
    main engine, as CI would use)."""
    keep = ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG")
    return {**{k: os.environ[k] for k in keep if k in os.environ}, **extra}


def toolkit(args: list[str], cwd: Path, env: Mapping[str, str] | None = None, *, quiet: bool = True) -> str:
    """``ci-toolkit -q ARGS``; its stderr on success (buildx's progress too without ``quiet``)."""
    return toolkit_run(args, cwd, env, quiet=quiet).stderr


def toolkit_run(
    args: list[str], cwd: Path, env: Mapping[str, str] | None = None, *, quiet: bool = True
) -> subprocess.CompletedProcess[str]:
    """``ci-toolkit [-q] ARGS``, raising on failure: its stdout (``--json``) and stderr."""
    proc = subprocess.run([sys.executable, "-m", "ci_toolkit", *(["-q"] if quiet else []), *args], cwd=cwd,
                          env=dict(env or job_env()), capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"ci-toolkit {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return proc


def raw_buildx(args: list[str], cwd: Path) -> str:
    """``docker buildx build --progress plain ARGS``; its progress output."""
    proc = subprocess.run(["docker", "buildx", "build", "--progress", "plain", *args], cwd=cwd, env=job_env(),
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"docker buildx build {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return proc.stderr


def engine_wipe(*images: str) -> None:
    """What an ephemeral runner loses: the engine's whole build cache and the images named.
    Breaks every other build on that engine: point DOCKER_HOST at an engine of your own."""
    if images:
        subprocess.run(["docker", "image", "rm", "-f", *images], env=job_env(), capture_output=True, check=False)
    subprocess.run(["docker", "buildx", "prune", "-af"], env=job_env(), capture_output=True, check=True)


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"
