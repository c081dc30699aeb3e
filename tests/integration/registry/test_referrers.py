"""Supply-chain metadata survives promotion on the test bed: an SBOM + provenance build
(BuildKit's SBOM generator protocol, with a tiny scanner image built here since the test bed
has no internet for docker/buildkit-syft-scanner) promoted in place and into another
repository still shows its SBOM to `docker buildx imagetools inspect`; referrers attached
from outside (the OCI fallback tag `sha256-<hex>` and cosign's `.sig` tag) follow `--to`
unless `--no-referrers`."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest
import requests

from tests.helpers import run_cli_process
from tests.integration.conftest import PUSH_REGISTRY
from tests.integration.registry.test_promote_support import (
    OCI_INDEX,
    OCI_MANIFEST,
    put_manifest,
    tag_digest,
    unique,
    upload_blob,
)

BASE = f"http://{PUSH_REGISTRY}"
SCANNER = """#!/bin/sh
set -eu
name=$(basename "$BUILDKIT_SCAN_SOURCE")
count=$(find "$BUILDKIT_SCAN_SOURCE" -type f | wc -l)
cat > "$BUILDKIT_SCAN_DESTINATION/$name.spdx.json" <<JSON
{"_type": "https://in-toto.io/Statement/v0.1", "predicateType": "https://spdx.dev/Document", "subject": [],
 "predicate": {"spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT", "name": "$name",
  "documentNamespace": "https://ci-toolkit.invalid/test-scanner/$name",
  "creationInfo": {"created": "2020-01-01T00:00:00Z", "creators": ["Tool: ci-toolkit-test-scanner"]},
  "packages": [{"name": "files-in-image", "SPDXID": "SPDXRef-Package-files", "versionInfo": "$count",
                "downloadLocation": "NOASSERTION"}]}}
JSON
"""


@pytest.fixture(scope="module")
def scanner(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An SBOM generator image that follows BuildKit's protocol (writes an SPDX statement)."""
    ctx = tmp_path_factory.mktemp("scanner")
    (ctx / "scan").write_text(SCANNER)
    (ctx / "scan").chmod(0o755)
    (ctx / "Dockerfile").write_text('FROM busybox\nCOPY scan /bin/scan\nCMD ["/bin/scan"]\n')
    ref = f"{PUSH_REGISTRY}/{unique('ci-toolkit-sbom-scanner')}:1"
    subprocess.run(
        ["docker", "buildx", "build", "-q", "--provenance=false", "--push", "-t", ref, str(ctx)],
        check=True,
        capture_output=True,
    )
    return ref


@pytest.fixture(scope="module")
def built(scanner: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(repository, digest) of an image built by the toolkit with SBOM and max provenance."""
    ctx = tmp_path_factory.mktemp("app")
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY app.txt /app.txt\n")
    (ctx / "app.txt").write_text("app\n")
    repo = unique("ci-toolkit-attest")
    result = run_cli_process(
        [
            *("--json", "build", str(ctx), "--tag", f"{PUSH_REGISTRY}/{repo}:build-5", "--push"),
            *("--cache-backend", "none", "--sbom", f"generator={scanner}", "--provenance", "mode=max"),
        ],
        env={"BUILD_NUMBER": "5", "CI": "true", "GIT_SHA": "a" * 40},
        cwd=ctx,
    )
    assert result.code == 0, result.err
    yield repo, json.loads(result.out)["digest"]


def _imagetools(ref: str, field: str) -> object:
    done = subprocess.run(
        ["docker", "buildx", "imagetools", "inspect", "--format", f"{{{{json .{field}}}}}", ref],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def _sbom_packages(ref: str) -> list[str]:
    sbom = _imagetools(ref, "SBOM")
    assert isinstance(sbom, dict), sbom
    return [p["name"] for p in sbom["SPDX"]["packages"]]


def _promote(*args: str) -> dict[str, object]:
    result = run_cli_process(["--json", "promote", *args], env={"CI_TOOLKIT_INSECURE_REGISTRIES": PUSH_REGISTRY})
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert isinstance(data, dict)
    return data


def test_sbom_and_provenance_build_keeps_them_through_promote(built: tuple[str, str]) -> None:
    repo, digest = built
    source = f"{PUSH_REGISTRY}/{repo}:build-5"
    assert _sbom_packages(source) == ["files-in-image"]
    provenance = _imagetools(source, "Provenance")
    assert isinstance(provenance, dict) and provenance.get("SLSA"), provenance
    _promote(source, "--tag", "latest")
    assert _sbom_packages(f"{PUSH_REGISTRY}/{repo}:latest") == ["files-in-image"]
    _promote(source, "--tag", "stable", "--to", f"{repo}-release")
    assert _sbom_packages(f"{PUSH_REGISTRY}/{repo}-release:stable") == ["files-in-image"]
    index = requests.get(f"{BASE}/v2/{repo}/manifests/build-5", headers={"Accept": OCI_INDEX}, timeout=30).json()
    # The toolkit's OCI metadata is on the index as annotations, not only in the config labels.
    assert index["annotations"]["org.opencontainers.image.revision"] == "a" * 40
    assert "org.opencontainers.image.created" in index["annotations"]
    assert index["annotations"]["ci-toolkit.build-number"] == "5"
    assert tag_digest(BASE, f"{repo}-release", "stable") == digest


def _attach_signature(repo: str, digest: str, text: str) -> str:
    """What oras/cosign do on a registry without the referrers API: an artifact manifest with
    `subject`, listed in the `sha256-<hex>` index; cosign's own `.sig` tag too."""
    config = b"{}"
    config_digest = upload_blob(BASE, repo, config)
    layer = text.encode()
    layer_digest = upload_blob(BASE, repo, layer)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.signature.v1",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": "application/vnd.example.signature.v1", "digest": layer_digest, "size": len(layer)}],
        "subject": {"mediaType": OCI_INDEX, "digest": digest, "size": 0},
    }
    body = json.dumps(manifest).encode()
    import hashlib

    ref_digest = "sha256:" + hashlib.sha256(body).hexdigest()
    put_manifest(BASE, repo, ref_digest, body, OCI_MANIFEST)
    descriptor = {
        "mediaType": OCI_MANIFEST,
        "digest": ref_digest,
        "size": len(body),
        "artifactType": "application/vnd.example.signature.v1",
    }
    fallback = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor]}).encode()
    put_manifest(BASE, repo, "sha256-" + digest.split(":")[1], fallback, OCI_INDEX)
    put_manifest(BASE, repo, "sha256-" + digest.split(":")[1] + ".sig", body, OCI_MANIFEST)
    return ref_digest


def test_referrers_follow_the_image_into_another_repository(built: tuple[str, str]) -> None:
    repo, digest = built
    signature = _attach_signature(repo, digest, f"signed {repo}")
    fallback = "sha256-" + digest.split(":")[1]
    kept = _promote(f"{PUSH_REGISTRY}/{repo}@{digest}", "--tag", "latest", "--to", f"{repo}-copy", "--no-referrers")
    assert kept["referrers"] == []
    assert tag_digest(BASE, f"{repo}-copy", fallback) is None
    data = _promote(f"{PUSH_REGISTRY}/{repo}@{digest}", "--tag", "latest", "--to", f"{repo}-signed")
    assert signature in data["referrers"] and f":{fallback}.sig" in data["referrers"]
    listed = requests.get(
        f"{BASE}/v2/{repo}-signed/manifests/{fallback}", headers={"Accept": OCI_INDEX}, timeout=30
    ).json()
    assert [m["digest"] for m in listed["manifests"]] == [signature]
    assert tag_digest(BASE, f"{repo}-signed", signature) == signature
    assert tag_digest(BASE, f"{repo}-signed", f"{fallback}.sig") == signature
    # Again: everything is already reachable, nothing is copied twice.
    assert _promote(f"{PUSH_REGISTRY}/{repo}@{digest}", "--tag", "v2", "--to", f"{repo}-signed")["referrers"] == []
