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
import time
import uuid

import requests
from tests.integration.test_promote_support import put_manifest, upload_blob

from benchmarks.common import Ratio

REGISTRY = "127.0.0.1:5000"
HUB = "http://127.0.0.1:5001"
BASE = f"http://{REGISTRY}"
SIZE_MB = 100
REPEAT = 3
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT = f"{DOCKER_MANIFEST}, application/vnd.oci.image.manifest.v1+json"


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _random_layer() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("blob")
        info.size = SIZE_MB * 1024 * 1024
        tar.addfile(info, io.BytesIO(os.urandom(info.size)))
    return buf.getvalue()


def _push_image(repo: str) -> None:
    """build-1 and build-2: busybox + the same 100 MB layer, different build-number labels."""
    headers = {"Accept": f"{ACCEPT}, application/vnd.docker.distribution.manifest.list.v2+json"}
    index = requests.get(f"{HUB}/v2/library/busybox/manifests/latest", headers=headers, timeout=30).json()
    amd64 = next(m["digest"] for m in index["manifests"] if m["platform"]["architecture"] == "amd64")
    bb = requests.get(f"{HUB}/v2/library/busybox/manifests/{amd64}", headers={"Accept": ACCEPT}, timeout=30).json()
    config = requests.get(f"{HUB}/v2/library/busybox/blobs/{bb['config']['digest']}", timeout=30).json()
    layers = []
    for layer in bb["layers"]:
        data = requests.get(f"{HUB}/v2/library/busybox/blobs/{layer['digest']}", timeout=60).content
        upload_blob(BASE, repo, data)
        layers.append({"mediaType": layer["mediaType"], "digest": layer["digest"], "size": len(data)})
    big = _random_layer()
    upload_blob(BASE, repo, big)
    layers.append({"mediaType": "application/vnd.docker.image.rootfs.diff.tar", "digest": _sha(big), "size": len(big)})
    config["rootfs"]["diff_ids"].append(_sha(big))
    for n in (1, 2):
        config.setdefault("config", {})["Labels"] = {"ci-toolkit.build-number": str(n)}
        body = json.dumps(config).encode()
        upload_blob(BASE, repo, body)
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
        put_manifest(BASE, repo, f"build-{n}", json.dumps(manifest).encode(), DOCKER_MANIFEST)


def _run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def _promote(*args: str) -> dict[str, object]:
    out = _run(sys.executable, "-m", "ci_toolkit", "promote", *args, "--json")
    return dict(json.loads(out))


def run() -> list[Ratio]:
    repo = f"ci-toolkit-bench-promote-{uuid.uuid4().hex[:10]}"
    ref = f"{REGISTRY}/{repo}"
    _push_image(repo)
    ours: list[float] = []
    theirs: list[float] = []
    try:
        for i in range(REPEAT):
            # Ours: latest is at build 1; move it to build 2 (guard, PUT, read-back, re-checks).
            _promote(f"{ref}:build-1", "--tag", "latest", "--force")
            start = time.perf_counter()
            _promote(f"{ref}:build-2", "--tag", "latest")
            ours.append(time.perf_counter() - start)
            # Baseline: what a job does without promotion; the engine has no copy of the image.
            start = time.perf_counter()
            _run("docker", "pull", "-q", f"{ref}:build-2")
            _run("docker", "tag", f"{ref}:build-2", f"{ref}:latest-{i}")
            _run("docker", "push", "-q", f"{ref}:latest-{i}")
            theirs.append(time.perf_counter() - start)
            subprocess.run(["docker", "image", "rm", f"{ref}:build-2", f"{ref}:latest-{i}"], capture_output=True)
        fresh = _promote(f"{ref}:build-2", "--tag", "fresh")
        _promote(f"{ref}:build-1", "--tag", "latest", "--force")
        moved = _promote(f"{ref}:build-2", "--tag", "latest")
        _promote(f"{ref}:build-1", "--tag", "a", "--tag", "b", "--tag", "c")
        three = _promote(f"{ref}:build-2", "--tag", "a", "--tag", "b", "--tag", "c")
    finally:
        subprocess.run(["docker", "image", "rm", f"{ref}:build-2"], capture_output=True)
        _delete(repo)
    t_ours, t_theirs = statistics.median(ours), statistics.median(theirs)
    per_tag = {
        "new tag": float(str(fresh["requests"])),
        "latest at an older build": float(str(moved["requests"])),
        "3 tags, each at an older build": float(str(three["requests"])) / 3,
    }
    rows = [
        Ratio(
            f"promote / pull+tag+push ({SIZE_MB} MB, no local copy)",
            t_ours / t_theirs,
            "<= 0.05",
            f"{t_ours * 1000:.0f} ms",
            f"{t_theirs * 1000:.0f} ms",
        )
    ]
    for what, count in per_tag.items():
        rows.append(Ratio(f"HTTP requests per tag / floor 2 ({what})", count / 2, "<= 5", f"{count:.1f}", "2"))
    return rows


def _delete(repo: str) -> None:
    tags = requests.get(f"{BASE}/v2/{repo}/tags/list", timeout=30).json().get("tags") or []
    digests = set()
    for tag in tags:
        head = requests.head(f"{BASE}/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT}, timeout=30)
        digests.add(head.headers.get("Docker-Content-Digest"))
    for digest in filter(None, digests):
        requests.delete(f"{BASE}/v2/{repo}/manifests/{digest}", timeout=30)
