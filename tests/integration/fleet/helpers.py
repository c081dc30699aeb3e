"""A fleet of two on one machine: the test bed's engine (A) and a second engine (B) that
`scripts/bootstrap --engine` starts with its own data root and socket, reached through a
builder that `ci-toolkit setup-builder --driver docker --endpoint` points at it. Both use
one registry cache (`--cache-backend registry`)."""

from __future__ import annotations

import io
import json
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests

from ci_toolkit.build.progress import Tally
from tests.helpers import REPO, CliResult, run_cli_process

ENGINE_B = "fleet-b"
SOCKET_B = f"unix:///run/ci-toolkit-engines/{ENGINE_B}/docker.sock"
REGISTRY = "127.0.0.1:5000"
# Real work after the stamp: a CPU loop and a 16 MB layer, so a cold build takes seconds and a
# warm one only imports.
DOCKERFILE = """\
FROM 127.0.0.1:5001/library/busybox:latest
ARG STAMP
RUN echo "$STAMP" > /stamp && i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done; echo $i > /count
RUN head -c 16777216 /dev/urandom > /blob
"""


def start_engine_b() -> str:
    proc = subprocess.run(
        [str(REPO / "scripts" / "bootstrap"), "--engine", ENGINE_B], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return SOCKET_B


@dataclass
class Fleet:
    context: Path
    builder_b: str
    cache_ref: str
    key: str

    def build(self, stamp: str, *, on_b: bool, key: str = "") -> CliResult:
        args = ["build", str(self.context), "--build-arg", f"STAMP={stamp}", "--cache-backend", "registry"]
        args += ["--cache-ref", self.cache_ref, "--cache-key", key or self.key, "--json"]
        if on_b:
            args += ["--builder", self.builder_b]
        return run_cli_process(args, env={"CI_TOOLKIT_INSECURE_REGISTRIES": "[127.0.0.1:5000]"})

    def import_only(self, stamp: str, *, on_b: bool) -> int:
        """A third build that only imports the key (no export, so it leaves the key as the race
        left it): plain buildx with --cache-from. Returns how many RUN steps came from it, read
        the way ``build`` reads them (a step whose CACHED mark buildx lost counts by its fetched
        layers, see ``ci_toolkit.build.progress``)."""
        docker = ["docker", "--context", self.builder_b] if on_b else ["docker"]
        ref = f"type=registry,ref={self.cache_ref}:cache-{self.key}"
        argv = [*docker, "buildx", "build", "--progress", "plain", "--build-arg", f"STAMP={stamp}"]
        proc = subprocess.run(
            [*argv, "--cache-from", ref, str(self.context)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        tally = Tally(stream=io.StringIO())
        for line in proc.stderr.splitlines():
            tally.passthrough(line)
        return sum(1 for vertex in tally.served() if " RUN " in tally.steps[vertex])

    def layers(self, result: CliResult, *, on_b: bool) -> list[str]:
        """The content digests of the image a build left in its engine: equal on two engines
        only when the second took every layer from the cache (the last RUN writes 16 MB of
        /dev/urandom)."""
        docker = ["docker", "--context", self.builder_b] if on_b else ["docker"]
        digest = json.loads(result.out)["digest"]
        argv = [*docker, "image", "inspect", "--format", "{{json .RootFS.Layers}}", digest]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return list(json.loads(proc.stdout))

    def manifest_blobs_missing(self, tag: str) -> list[str]:
        """Digests the cache manifest under ``tag`` references that the registry lacks."""
        repo = self.cache_ref.removeprefix(f"{REGISTRY}/")
        accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"
        resp = requests.get(f"http://{REGISTRY}/v2/{repo}/manifests/{tag}", headers={"Accept": accept}, timeout=30)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        blobs = [body.get("config", {}), *body.get("layers", []), *body.get("manifests", [])]
        missing = []
        for blob in blobs:
            digest = blob.get("digest")
            kind = "manifests" if blob in body.get("manifests", []) else "blobs"
            if digest and requests.head(f"http://{REGISTRY}/v2/{repo}/{kind}/{digest}", timeout=30).status_code != 200:
                missing.append(digest)
        return missing


def new_fleet(tmp: Path) -> Fleet:
    (tmp / "Dockerfile").write_text(DOCKERFILE)
    name = f"fleet-b-{uuid.uuid4().hex[:8]}"
    result = run_cli_process(["setup-builder", "--name", name, "--driver", "docker", "--endpoint", SOCKET_B])
    assert result.code == 0, result.err
    return Fleet(tmp, name, f"{REGISTRY}/ci-toolkit-fleet-{uuid.uuid4().hex[:8]}/cache", "fleet-key")


def remove_builder(name: str) -> None:
    subprocess.run(["docker", "context", "rm", "-f", name], capture_output=True)


def cached(result: CliResult) -> tuple[int, int]:
    data = json.loads(result.out)
    return int(data["cache_hits"]), int(data["cache_steps"])
