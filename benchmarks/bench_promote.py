"""`ci-toolkit promote` vs `docker pull && docker tag && docker push` for a 100 MB image the
engine has no copy of (goal: at most 0.05), and HTTP requests per promoted tag against the
floor of two (one GET, one PUT).

P-imagetools: one tag of a two-platform index moved from build 1 to build 2, as whole
processes (CLI start-up included), against `docker buildx imagetools create -t NEW SRC`, the
Go tool a user would pick (it has no ordering guard and no read-back); interleaved, median of 9.
P-requests: HTTP requests per tag for a new tag (goal 3), over an older tag (goal 5) whose
ordering key is an index annotation (read from the manifest fetch the guard does anyway) and,
for comparison, a config label only (two more reads per image), and for three tags at once.

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
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

import requests
from tests.integration.registry.test_promote_support import (
    OCI_INDEX,
    private_registry,
    push_index,
    put_manifest,
    tag_digest,
    upload_blob,
)

from benchmarks.common import CLI, Ratio, installed_env
from ci_toolkit.core.report import Reporter
from ci_toolkit.core.settings import Settings
from ci_toolkit.registry.promote import PromoteRequest, promote

HUB = "http://127.0.0.1:5001"
SIZES_MB = (100, 400)
REPEAT = 3
REPEAT_IMAGETOOLS = 9
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
    out = subprocess.run(
        [CLI, "promote", *args, "--json"], check=True, capture_output=True, text=True, env=installed_env()
    ).stdout
    return dict(json.loads(out))


def run() -> list[Ratio]:
    rows: list[Ratio] = []
    # A registry of our own in a temporary directory: the 100+ MB blobs go away with it.
    with tempfile.TemporaryDirectory(prefix="ci-toolkit-bench-promote-") as tmp, private_registry(Path(tmp)) as host:
        rows.extend(bench_fixed_costs(host))
        for size in SIZES_MB:
            rows.extend(_bench_size(host, size))
    return rows


def _two_builds(host: str, repo: str, *, annotated: bool) -> tuple[str, str]:
    """Builds 1 and 2 as two-platform indexes; the build number in the configs' labels and,
    when ``annotated``, in the index annotations too. Returns both digests."""
    base = f"http://{host}"
    digests = []
    for n in (1, 2):
        key = {"ci-toolkit.build-number": str(n)}
        digests.append(push_index(base, repo, f"build-{n}", key, annotations=key if annotated else None))
    return digests[0], digests[1]


def _set_tag(host: str, repo: str, tags: tuple[str, ...], to: str) -> None:
    """Point tags at an image directly through the API (untimed set-up)."""
    base = f"http://{host}"
    body = requests.get(f"{base}/v2/{repo}/manifests/{to}", headers={"Accept": OCI_INDEX}, timeout=30).content
    for tag in tags:
        put_manifest(base, repo, tag, body, OCI_INDEX)


def bench_fixed_costs(host: str) -> list[Ratio]:
    return [_bench_imagetools(host), *_bench_requests(host)]


def _bench_imagetools(host: str) -> Ratio:
    repo = "ci-toolkit-bench-promote/imagetools"
    _, newer = _two_builds(host, repo, annotated=True)
    ref = f"{host}/{repo}"
    ours_argv = [CLI, "promote", f"{ref}:build-2", "--tag", "latest"]
    theirs_argv = ["docker", "buildx", "imagetools", "create", "-t", f"{ref}:latest", f"{ref}:build-2"]
    env = installed_env()
    samples: dict[str, list[float]] = {"ours": [], "theirs": []}
    for i in range(REPEAT_IMAGETOOLS):
        sides = [("ours", ours_argv), ("theirs", theirs_argv)]
        for side, argv in sides if i % 2 == 0 else reversed(sides):
            _set_tag(host, repo, ("latest",), "build-1")
            start = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True, env=env)
            samples[side].append(time.perf_counter() - start)
            assert tag_digest(f"http://{host}", repo, "latest") == newer, f"{side} did not move latest"
    t_ours, t_theirs = statistics.median(samples["ours"]), statistics.median(samples["theirs"])
    return Ratio(
        "P-imagetools: promote / imagetools create (one tag, 2-platform index, whole processes)",
        t_ours / t_theirs,
        "<= 1.0",
        f"{t_ours * 1000:.0f} ms",
        f"{t_theirs * 1000:.0f} ms",
    )


def _bench_requests(host: str) -> list[Ratio]:
    def count(result: dict[str, object], tags: int = 1) -> float:
        return float(str(result["requests"])) / tags

    annotated, labelled = "ci-toolkit-bench-promote/requests", "ci-toolkit-bench-promote/requests-labels"
    _two_builds(host, annotated, annotated=True)
    _two_builds(host, labelled, annotated=False)
    new = count(_promote(f"{host}/{annotated}:build-2", "--tag", f"new-{uuid.uuid4().hex[:8]}"))
    _set_tag(host, annotated, ("latest", "a", "b", "c"), "build-1")
    _set_tag(host, labelled, ("latest",), "build-1")
    older = count(_promote(f"{host}/{annotated}:build-2", "--tag", "latest"))
    older_labels = count(_promote(f"{host}/{labelled}:build-2", "--tag", "latest"))
    three = count(_promote(f"{host}/{annotated}:build-2", "--tag", "a", "--tag", "b", "--tag", "c"), 3)
    rows = [("new tag", new, 3), ("over an older tag, key annotated", older, 5)]
    rows += [
        ("3 tags over older ones, key annotated", three, 5),
        ("over an older tag, key in config only", older_labels, 9),
    ]
    return [
        Ratio(f"P-requests: HTTP requests per tag ({what})", n, f"<= {goal}", f"{n:.1f}", "floor 2")
        for what, n, goal in rows
    ]


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
