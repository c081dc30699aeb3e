"""Mirror probing: what a job with 20 pulls pays when its mirror hangs (accepts, never
answers). Ours probes once per run and reuses the answer; the baseline probes before every
pull, as per-pull fallback logic does. Also the cost of routing a pull through a mirror that
answers (one cached probe) against no mirror at all."""

from __future__ import annotations

import socket
import threading

from benchmarks.common import Ratio, interleaved
from ci_toolkit.core.report import Reporter
from ci_toolkit.core.settings import Settings
from ci_toolkit.mirror import resolve as mirror

PULLS = 20
REFS = [f"library/app{i}:1" for i in range(PULLS)]


def _hanging_server() -> tuple[socket.socket, str]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)  # never answered: the client waits for its timeout

    threading.Thread(target=accept, daemon=True).start()
    return server, f"127.0.0.1:{server.getsockname()[1]}"


def run() -> list[Ratio]:
    server, address = _hanging_server()
    reporter = Reporter(quiet=True, stream=open("/dev/null", "w"))  # noqa: SIM115 (lives for the run)
    hanging = Settings(docker_registry=address, hub_registry="127.0.0.1:5001", mirror_timeout="200ms")

    def once_per_run() -> None:
        mirror.reset()
        for ref in REFS:
            mirror.pull_reference(ref, hanging, reporter)

    def every_pull() -> None:
        for ref in REFS:
            mirror.reset()
            mirror.pull_reference(ref, hanging, reporter)

    t_ours, t_base = interleaved(once_per_run, every_pull, repeat=3)
    server.close()
    mirror.reset()
    return [
        Ratio(
            f"mirror hangs, {PULLS} pulls: probe once / probe per pull",
            t_ours / t_base,
            "<= 0.2",
            f"{t_ours * 1000:.0f} ms",
            f"{t_base * 1000:.0f} ms",
        ),
    ]
