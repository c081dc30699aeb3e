"""`ci-toolkit sweep` of 100 labelled containers vs the usual shell one-liner
`docker ps -aq --filter label=... | xargs docker rm -f` (goal: ratio <= 1.0).

Both sides start as a fresh process (the CLI's start-up is part of what a post-job hook
pays) and face the same 100 containers: created, not started, from busybox, with the full
toolkit label set and a label unique to the round. Creation is not timed. Rounds alternate
which side goes first so engine drift hits both alike."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from benchmarks.common import Ratio

COUNT = 100
ROUNDS = 5


def _create(bench: str) -> None:
    import docker

    from ci_toolkit.containers import labels

    api = docker.from_env(max_pool_size=16).api
    ctx = labels.label_context(prefix="ci-toolkit", job_id=f"bench-{bench}", ci="local", run_id="", user_labels={})
    tags = {**ctx.labels(role="run", step="bench"), "bench": bench}
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: api.create_container("busybox", command=["true"], labels=tags), range(COUNT)))


def _count(bench: str) -> int:
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=bench={bench}"], capture_output=True, text=True, check=True
    )
    return len(out.stdout.split())


def _ours(bench: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "ci_toolkit", "-q", "sweep", "--job-id", f"bench-{bench}", "--label", f"bench={bench}"],
        check=True,
        capture_output=True,
    )


def _baseline(bench: str) -> None:
    subprocess.run(
        f"docker ps -aq --filter label=bench={bench} | xargs docker rm -f",
        shell=True,
        check=True,
        capture_output=True,
    )


def _timed(side: object, bench: str) -> float:
    _create(bench)
    start = time.perf_counter()
    side(bench)  # type: ignore[operator]
    elapsed = time.perf_counter() - start
    if _count(bench):
        raise RuntimeError(f"{side} left containers behind")
    return elapsed


def run() -> list[Ratio]:
    ours: list[float] = []
    base: list[float] = []
    for i in range(ROUNDS):
        pair = [(_ours, ours), (_baseline, base)]
        for side, samples in pair if i % 2 == 0 else reversed(pair):
            samples.append(_timed(side, uuid.uuid4().hex[:10]))
    t_ours, t_base = statistics.median(ours), statistics.median(base)
    return [
        Ratio(
            f"sweep: {COUNT} containers vs docker ps -aq + xargs docker rm -f",
            t_ours / t_base,
            "<= 1.0",
            f"{t_ours * 1000:.0f} ms",
            f"{t_base * 1000:.0f} ms",
        )
    ]
