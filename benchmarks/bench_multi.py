"""Split and merge, side by side on the test bed.

M1: a two-platform image (busybox + a RUN, arm64 under QEMU, plus a fresh file each round so
    every round pushes a new layer) built as split+merge, i.e. `ci-toolkit build --platform P
    --push-by-digest` for amd64, then for arm64 (one after the other: this measures overhead,
    not a matrix's parallelism), then `ci-toolkit merge --tag`, against one `ci-toolkit build
    --platform linux/amd64,linux/arm64 --push --tag` of the same content. Both without a build
    cache export (--cache-backend none) and with the engine's layer cache warm, interleaved.
    Goal: total at most 1.15x.
M1b: `ci-toolkit merge` alone (a whole process: two digests, one tag), median seconds.
    Goal: at most 0.3 s. M1c: the same merge's own time inside that process (reading both
    manifests and configs, checking, writing the index; its JSON `seconds`), for reference.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.common import Ratio

REGISTRY = "127.0.0.1:5000"
DOCKERFILE = "FROM 127.0.0.1:5001/library/busybox:latest\nRUN uname -m > /arch\nCOPY stamp /stamp\n"
ROUNDS = 5


def _cli(*args: str, cwd: Path) -> str:
    # As installed on a runner: bytecode cached (a shell that sets PYTHONDONTWRITEBYTECODE
    # would make every process recompile the toolkit, and split+merge runs three of them).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["CI_TOOLKIT_CACHE_BACKEND"] = "none"
    proc = subprocess.run([sys.executable, "-m", "ci_toolkit", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        proc.check_returncode()
    return proc.stdout


def _stamp(ctx: Path) -> None:
    (ctx / "stamp").write_text(uuid.uuid4().hex)


def _split(ctx: Path, repo: str, merge_times: list[float], inside: list[float]) -> float:
    _stamp(ctx)
    digests = ctx / f"digests-{uuid.uuid4().hex[:6]}"
    start = time.perf_counter()
    for platform in ("linux/amd64", "linux/arm64"):
        _cli(
            "build",
            ".",
            "--platform",
            platform,
            "--push-by-digest",
            "--tag",
            repo,
            "--digest-dir",
            str(digests),
            cwd=ctx,
        )
    merge_start = time.perf_counter()
    out = _cli(
        *("merge", repo, "--digest-dir", str(digests), "--tag", "split"),
        *("--platforms", "linux/amd64,linux/arm64", "--json"),
        cwd=ctx,
    )
    end = time.perf_counter()
    merge_times.append(end - merge_start)
    inside.append(float(json.loads(out)["seconds"]))
    return end - start


def _single(ctx: Path, repo: str) -> float:
    _stamp(ctx)
    start = time.perf_counter()
    _cli("build", ".", "--platform", "linux/amd64,linux/arm64", "--push", "--tag", f"{repo}:single", cwd=ctx)
    return time.perf_counter() - start


def run() -> list[Ratio]:
    repo = f"{REGISTRY}/ci-toolkit-bench-multi-{uuid.uuid4().hex[:8]}/app"
    with tempfile.TemporaryDirectory(prefix="bench-multi-") as tmp:
        ctx = Path(tmp)
        (ctx / "Dockerfile").write_text(DOCKERFILE)
        merges: list[float] = []
        inside: list[float] = []
        _split(ctx, repo, [], [])  # warm the engine's layer cache for both variants
        _single(ctx, repo)
        split_s, single_s = [], []
        for _ in range(ROUNDS):
            split_s.append(_split(ctx, repo, merges, inside))
            single_s.append(_single(ctx, repo))
        t_split, t_single, t_merge = (statistics.median(x) for x in (split_s, single_s, merges))
        t_inside = statistics.median(inside)
    return [
        Ratio(
            "M1 split+merge (2 builds + merge) / one two-platform build",
            t_split / t_single,
            "<= 1.15",
            f"{t_split:.2f} s",
            f"{t_single:.2f} s",
        ),
        Ratio("M1b merge alone, seconds (whole process)", t_merge, "<= 0.3", f"{t_merge * 1000:.0f} ms", "0.3 s"),
        Ratio(
            "M1c merge's own work, seconds (in the process)", t_inside, "<= 0.3", f"{t_inside * 1000:.0f} ms", "0.3 s"
        ),
    ]
