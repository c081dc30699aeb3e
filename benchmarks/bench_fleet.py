"""A fleet of two sharing the registry cache, side by side on the test bed.

F1: engine B's first build of a key (through a builder that `setup-builder --driver docker
    --endpoint` points at the second engine `scripts/bootstrap --engine fleet-b` starts)
    against engine A's cold build that exported it (`--cache-backend registry`). Each build
    starts after a fresh ARG, so A is cold and B has only the shared cache. Two images,
    interleaved round by round, median of 3 fresh keys each:
    - CI-sized (the goal's row): debian:trixie (the hub stand-in; `scripts/bootstrap --with
      debian`), a package layer from Debian's mirror (curl, git, python3: ~150 MB) and a 16 MB
      layer, the shape of a project's CI image, smaller than benchmarks/images/realsize;
    - busybox: a CPU loop and a 16 MB layer, a cold build of a few seconds. Both sides are
      then mostly fixed cost (CLI, buildx, the registry round trips, loading the image into
      the engine), so its ratio is the floor the CI-sized row is read against.
CI_TOOLKIT_BENCH_SMALL=1 shrinks the package list for a quick check; report figures from the
full run.
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
SMALL = os.environ.get("CI_TOOLKIT_BENCH_SMALL") == "1"
PACKAGES = "ca-certificates" if SMALL else "ca-certificates curl git python3"
IMAGES = {
    "CI-sized": f"""\
FROM 127.0.0.1:5001/library/debian:trixie
ARG STAMP
RUN echo "$STAMP" > /stamp \\
 && apt-get update \\
 && apt-get install -y --no-install-recommends {PACKAGES} \\
 && rm -rf /var/lib/apt/lists/*
RUN head -c 16777216 /dev/urandom > /blob
""",
    "busybox": """\
FROM 127.0.0.1:5001/library/busybox:latest
ARG STAMP
RUN echo "$STAMP" > /stamp && i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done; echo $i > /count
RUN head -c 16777216 /dev/urandom > /blob
""",
}
ROUNDS = 3


def _cli(*args: str, cwd: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["CI_TOOLKIT_INSECURE_REGISTRIES"] = "[127.0.0.1:5000]"
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
    colds: dict[str, list[float]] = {name: [] for name in IMAGES}
    warms: dict[str, list[float]] = {name: [] for name in IMAGES}
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        for name, dockerfile in IMAGES.items():
            (Path(tmp) / name).mkdir()
            (Path(tmp) / name / "Dockerfile").write_text(dockerfile)
        _cli("setup-builder", "--name", builder, "--driver", "docker", "--endpoint", sock, cwd=Path(tmp))
        try:
            for _ in range(ROUNDS):
                for name in IMAGES:
                    stamp = uuid.uuid4().hex
                    common = ["build", ".", "--build-arg", f"STAMP={stamp}", "--cache-backend", "registry"]
                    common += ["--cache-ref", ref, "--cache-key", f"f1-{stamp[:8]}"]
                    colds[name].append(_cli(*common, cwd=Path(tmp) / name))
                    warms[name].append(_cli(*common, "--builder", builder, cwd=Path(tmp) / name))
        finally:
            subprocess.run(["docker", "context", "rm", "-f", builder], capture_output=True)
    rows = []
    for name in IMAGES:
        cold, warm = statistics.median(colds[name]), statistics.median(warms[name])
        label = f"F1 engine B first build / engine A cold (registry cache), {name}" + (" (SMALL)" if SMALL else "")
        rows.append(Ratio(label, warm / cold, "<= 0.2", f"{warm:.2f} s", f"{cold:.2f} s"))
    return rows
