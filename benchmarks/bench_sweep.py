"""W: `ci-toolkit sweep` of 100 labelled containers vs the usual shell one-liner
`docker ps -aq --filter label=... | xargs docker rm -f` (goal: ratio <= 0.75), in two shapes:

- running: 100 running containers, each on a network of its own. The sweep removes the
  networks too, so the baseline does the same work:
  `... | xargs docker rm -f; docker network ls -q --filter label=... | xargs docker network rm`;
- stopped: 100 containers that ran and exited.

Both sides start as a fresh process (the CLI's start-up is part of what a post-job hook pays,
timed with bytecode written as an installed toolkit has it) and face the same shape: created
untimed, with the full toolkit label set and a label unique to the round (nothing else on the
shared engine matches it). Rounds alternate which side goes first so engine drift hits both
alike; the median of the rounds is reported."""

from __future__ import annotations

import random
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from benchmarks.common import CLI, Ratio, installed_env

COUNT = 100
ROUNDS = {"running": 3, "stopped": 5}


def _create(bench: str, shape: str) -> None:
    import docker
    import docker.types

    from ci_toolkit.containers import labels

    api = docker.from_env(max_pool_size=16).api
    ctx = labels.label_context(prefix="ci-toolkit", job_id=f"bench-{bench}", ci="local", run_id="", user_labels={})
    tags = {**ctx.labels(role="run", step="bench"), "bench": bench}

    # The engine's default address pools hold ~30 networks: give each a /28 of its own, in a
    # block picked at random per round so concurrent rounds (or other users) rarely meet.
    block = random.randrange(64, 192)

    def one(i: int) -> None:
        if shape == "running":
            pool = docker.types.IPAMPool(subnet=f"10.{block}.{i}.0/28")
            ipam = docker.types.IPAMConfig(pool_configs=[pool])
            net = api.create_network(f"ci-toolkit-bench-{bench}-{i}", labels=tags, ipam=ipam)["Id"]
            config = api.create_networking_config({net: api.create_endpoint_config()})
            host = api.create_host_config(network_mode=net)
            cid = api.create_container(
                "busybox", command=["sleep", "600"], labels=tags, host_config=host, networking_config=config
            )["Id"]
            api.start(cid)
        else:
            cid = api.create_container("busybox", command=["true"], labels=tags)["Id"]
            api.start(cid)
            api.wait(cid, timeout=60)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(COUNT)))


def _left(bench: str) -> int:
    found = 0
    for kind in (["ps", "-aq"], ["network", "ls", "-q"]):
        out = subprocess.run(
            ["docker", *kind, "--filter", f"label=bench={bench}"], capture_output=True, text=True, check=True
        )
        found += len(out.stdout.split())
    return found


def _ours(bench: str) -> None:
    subprocess.run(
        [CLI, "-q", "sweep", "--job-id", f"bench-{bench}", "--label", f"bench={bench}"],
        check=True,
        capture_output=True,
        env=installed_env(),
    )


def _baseline(bench: str) -> None:
    subprocess.run(
        f"docker ps -aq --filter label=bench={bench} | xargs -r docker rm -f >/dev/null; "
        f"docker network ls -q --filter label=bench={bench} | xargs -r docker network rm >/dev/null",
        shell=True,
        check=True,
        capture_output=True,
    )


def _timed(side: Callable[[str], None], shape: str) -> float:
    bench = uuid.uuid4().hex[:10]
    _create(bench, shape)
    try:
        start = time.perf_counter()
        side(bench)
        elapsed = time.perf_counter() - start
        if _left(bench):
            raise RuntimeError(f"{side.__name__} left resources of round {bench} behind")
    finally:
        _baseline(bench)  # never leave a round's containers on the shared engine
    return elapsed


def run() -> list[Ratio]:
    return [_shape(shape, rounds) for shape, rounds in ROUNDS.items()]


def _shape(shape: str, rounds: int) -> Ratio:
    ours: list[float] = []
    base: list[float] = []
    for i in range(rounds):
        pair: list[tuple[Callable[[str], None], list[float]]] = [(_ours, ours), (_baseline, base)]
        for side, samples in pair if i % 2 == 0 else reversed(pair):
            samples.append(_timed(side, shape))
    t_ours, t_base = statistics.median(ours), statistics.median(base)
    what = "running, one network each" if shape == "running" else "stopped"
    return Ratio(
        f"W: sweep / docker ps -aq + xargs docker rm -f ({COUNT} containers, {what})",
        t_ours / t_base,
        "<= 0.75",
        f"{t_ours * 1000:.0f} ms",
        f"{t_base * 1000:.0f} ms",
    )
