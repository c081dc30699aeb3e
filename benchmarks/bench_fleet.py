"""A fleet of two sharing the registry cache, side by side on the test bed.

F1: engine B's first build of a key (through a builder that `setup-builder --driver docker
    --endpoint` points at the second engine `scripts/bootstrap --engine fleet-b` starts)
    against engine A's cold build that exported it (`--cache-backend registry`). The build
    does real work after a fresh ARG (a CPU loop and a 16 MB layer), so A is cold and B has
    only the shared cache. Median of 3 fresh keys. Goal: B's first / A's cold at most 0.2.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.common import Ratio

REPO = Path(__file__).resolve().parent.parent
ENGINE_B = "fleet-b"
DOCKERFILE = """\
FROM 127.0.0.1:5001/library/busybox:latest
ARG STAMP
RUN echo "$STAMP" > /stamp && i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done; echo $i > /count
RUN head -c 16777216 /dev/urandom > /blob
"""
ROUNDS = 3


def _cli(*args: str, cwd: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "ci_toolkit", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        proc.check_returncode()
    return time.perf_counter() - start


def run() -> list[Ratio]:
    subprocess.run([str(REPO / "scripts" / "bootstrap"), "--engine", ENGINE_B], check=True, capture_output=True)
    builder = f"bench-fleet-{uuid.uuid4().hex[:6]}"
    sock = f"unix:///run/ci-toolkit-engines/{ENGINE_B}/docker.sock"
    ref = f"127.0.0.1:5000/ci-toolkit-bench-fleet-{uuid.uuid4().hex[:8]}/cache"
    colds, warms = [], []
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        ctx = Path(tmp)
        (ctx / "Dockerfile").write_text(DOCKERFILE)
        _cli("setup-builder", "--name", builder, "--driver", "docker", "--endpoint", sock, cwd=ctx)
        try:
            for _ in range(ROUNDS):
                stamp = uuid.uuid4().hex
                common = ["build", ".", "--build-arg", f"STAMP={stamp}", "--cache-backend", "registry"]
                common += ["--cache-ref", ref, "--cache-key", f"f1-{stamp[:8]}"]
                colds.append(_cli(*common, cwd=ctx))
                warms.append(_cli(*common, "--builder", builder, cwd=ctx))
        finally:
            subprocess.run(["docker", "context", "rm", "-f", builder], capture_output=True)
    cold, warm = statistics.median(colds), statistics.median(warms)
    return [
        Ratio(
            "F1 engine B first build / engine A cold (registry cache)",
            warm / cold,
            "<= 0.2",
            f"{warm:.2f} s",
            f"{cold:.2f} s",
        )
    ]
