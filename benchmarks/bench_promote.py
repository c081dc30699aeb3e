"""`ci-toolkit promote` vs `docker pull && docker tag && docker push` for a 100 MB image the
engine has no copy of (goal: at most 0.05), and HTTP requests per promoted tag against the
floor of two (one GET, one PUT).

The image is assembled through the registry API (busybox's layer from the "hub" plus a 100 MB
random layer), so it never passes through the engine and `docker pull` really downloads it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import requests
from tests.integration.registry.test_promote_support import private_registry, put_manifest, upload_blob

from benchmarks.common import Ratio
from ci_toolkit.core.report import Reporter
from ci_toolkit.core.settings import Settings
from ci_toolkit.registry.promote import PromoteRequest, promote

HUB = "http://127.0.0.1:5001"
SIZES_MB = (100, 400)
REPEAT = 3
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT = f"{DOCKER_MANIFEST}, application/vnd.oci.image.manifest.v1+json"


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _random_layer(size_mb: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("blob")
        info.size = size_mb * 1024 * 1024
        tar.addfile(info, io.BytesIO(os.urandom(info.size)))
    return buf.getvalue()


def _push_image(base: str, repo: str, size_mb: int) -> None:
    """build-1 and build-2: busybox + the same 100 MB layer, different build-number labels."""
    headers = {"Accept": f"{ACCEPT}, application/vnd.docker.distribution.manifest.list.v2+json"}
    index = requests.get(f"{HUB}/v2/library/busybox/manifests/latest", headers=headers, timeout=30).json()
    amd64 = next(m["digest"] for m in index["manifests"] if m["platform"]["architecture"] == "amd64")
    bb = requests.get(f"{HUB}/v2/library/busybox/manifests/{amd64}", headers={"Accept": ACCEPT}, timeout=30).json()
    config = requests.get(f"{HUB}/v2/library/busybox/blobs/{bb['config']['digest']}", timeout=30).json()
    layers = []
    for layer in bb["layers"]:
        data = requests.get(f"{HUB}/v2/library/busybox/blobs/{layer['digest']}", timeout=60).content
        upload_blob(base, repo, data)
        layers.append({"mediaType": layer["mediaType"], "digest": layer["digest"], "size": len(data)})
    big = _random_layer(size_mb)
    upload_blob(base, repo, big)
    layers.append({"mediaType": "application/vnd.docker.image.rootfs.diff.tar", "digest": _sha(big), "size": len(big)})
    config["rootfs"]["diff_ids"].append(_sha(big))
    for n in (1, 2):
        config.setdefault("config", {})["Labels"] = {"ci-toolkit.build-number": str(n)}
        body = json.dumps(config).encode()
        upload_blob(base, repo, body)
        manifest = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": _sha(body),
                "size": len(body),
            },
            "layers": layers,
        }
        put_manifest(base, repo, f"build-{n}", json.dumps(manifest).encode(), DOCKER_MANIFEST)


def _run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def _promote(*args: str) -> dict[str, object]:
    out = _run(sys.executable, "-m", "ci_toolkit", "promote", *args, "--json")
    return dict(json.loads(out))


def run() -> list[Ratio]:
    rows: list[Ratio] = []
    # A registry of our own in a temporary directory: the 100+ MB blobs go away with it.
    with tempfile.TemporaryDirectory(prefix="ci-toolkit-bench-promote-") as tmp, private_registry(Path(tmp)) as host:
        for size in SIZES_MB:
            rows.extend(_bench_size(host, size))
    return rows


def _bench_size(host: str, size_mb: int) -> list[Ratio]:
    repo = f"ci-toolkit-bench-promote-{size_mb}"
    ref = f"{host}/{repo}"
    _push_image(f"http://{host}", repo, size_mb)
    ours: list[float] = []
    library: list[float] = []
    theirs: list[float] = []
    try:
        for i in range(REPEAT):
            # Ours, as a CI job runs it: latest is at build 1; move it to build 2
            # (ordering guard, HEAD, PUT, read-back, two re-checks).
            _promote(f"{ref}:build-1", "--tag", "latest", "--force")
            start = time.perf_counter()
            _promote(f"{ref}:build-2", "--tag", "latest")
            ours.append(time.perf_counter() - start)
            # The same through the library entry that pipelines call (no interpreter start).
            _promote(f"{ref}:build-1", "--tag", "latest", "--force")
            start = time.perf_counter()
            result = promote(
                PromoteRequest(source=f"{ref}:build-2", tags=("latest",)),
                settings=Settings(),
                env={},
                reporter=Reporter(quiet=True),
            )
            library.append(time.perf_counter() - start)
            assert result.outcomes[0].action == "promoted"
            # Baseline: what a job does without promotion; the engine has no copy of the image.
            start = time.perf_counter()
            _run("docker", "pull", "-q", f"{ref}:build-2")
            _run("docker", "tag", f"{ref}:build-2", f"{ref}:latest-{i}")
            _run("docker", "push", "-q", f"{ref}:latest-{i}")
            theirs.append(time.perf_counter() - start)
            subprocess.run(["docker", "image", "rm", f"{ref}:build-2", f"{ref}:latest-{i}"], capture_output=True)
        counts = _request_counts(ref) if size_mb == SIZES_MB[0] else {}
    finally:
        subprocess.run(["docker", "image", "rm", f"{ref}:build-2"], capture_output=True)
    t_ours, t_lib, t_theirs = statistics.median(ours), statistics.median(library), statistics.median(theirs)
    base = f"{t_theirs * 1000:.0f} ms"
    rows = [
        Ratio(
            f"promote CLI / pull+tag+push ({size_mb} MB, no local copy)",
            t_ours / t_theirs,
            "<= 0.05",
            f"{t_ours * 1000:.0f} ms",
            base,
        ),
        Ratio(
            f"promote() in-process / pull+tag+push ({size_mb} MB)",
            t_lib / t_theirs,
            "<= 0.05",
            f"{t_lib * 1000:.0f} ms",
            base,
        ),
    ]
    for what, count in counts.items():
        rows.append(Ratio(f"HTTP requests per tag / floor 2 ({what})", count / 2, "<= 5", f"{count:.1f}", "2"))
    return rows


def _request_counts(ref: str) -> dict[str, float]:
    fresh = _promote(f"{ref}:build-2", "--tag", "fresh")
    _promote(f"{ref}:build-1", "--tag", "latest", "--force")
    moved = _promote(f"{ref}:build-2", "--tag", "latest")
    _promote(f"{ref}:build-1", "--tag", "a", "--tag", "b", "--tag", "c")
    three = _promote(f"{ref}:build-2", "--tag", "a", "--tag", "b", "--tag", "c")
    return {
        "new tag": float(str(fresh["requests"])),
        "latest at an older build": float(str(moved["requests"])),
        "3 tags, each at an older build": float(str(three["requests"])) / 3,
    }
