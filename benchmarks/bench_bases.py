"""Cross-step bases with no settings, side by side on the test bed.

P3: the seed's two-step example (examples/pipelines/seed-no-settings: build-base, then
    build-from-base FROM it, both for linux/amd64 and linux/arm64) run with no settings, where
    the toolkit keeps the steps in the engine (containerd image store + docker driver), against
    the same run with build-registry set to the test bed's registry, where each step is pushed
    and the next resolves it from there by digest. A fresh build number each run (new tags),
    the engine's layer cache warm, interleaved. Goal: at most 1.0x.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from benchmarks.common import Ratio, interleaved

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "pipelines" / "seed-no-settings"
ROUNDS = 5


def _run(project: Path, extra_env: dict[str, str], made: list[str]) -> None:
    number = f"b{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(BUILD_NUMBER=number, CI_TOOLKIT_CACHE_BACKEND="none", **extra_env)
    proc = subprocess.run(
        [sys.executable, "-m", "ci_toolkit", "pipeline", "run"], cwd=project, env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        proc.check_returncode()
    made.append(number)


def _remove_local(numbers: list[str]) -> None:
    listed = subprocess.run(
        ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True, text=True
    ).stdout.split()
    refs = [r for r in listed if any(r.endswith(f":{n}") for n in numbers)]
    if refs:
        subprocess.run(["docker", "image", "rm", "-f", *refs], capture_output=True)


def run() -> list[Ratio]:
    made: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-bases-") as tmp:
        project = Path(tmp) / "seed"
        shutil.copytree(EXAMPLE, project)
        with_registry = {"CI_TOOLKIT_BUILD_REGISTRY": "127.0.0.1:5000"}
        try:
            _run(project, {}, made)  # warm both paths
            _run(project, with_registry, made)
            t_ours, t_base = interleaved(
                lambda: _run(project, {}, made), lambda: _run(project, with_registry, made), ROUNDS
            )
        finally:
            _remove_local(made)
    return [
        Ratio(
            "P3 seed two-step, no settings (engine) / build-registry set",
            t_ours / t_base,
            "<= 1.0",
            f"{t_ours:.2f} s",
            f"{t_base:.2f} s",
        )
    ]
