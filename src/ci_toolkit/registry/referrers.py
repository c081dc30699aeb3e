"""Referrers (signatures, SBOMs, provenance attached to an image from outside it) follow the
image into another repository: the OCI 1.1 referrers API, or where a registry lacks it the
tag schema that stands in for it (``sha256-<hex>``, an index of the referrers) and cosign's
tags (``sha256-<hex>.sig``, ``.att``, ``.sbom``).

Within one repository nothing needs copying: a new tag on the same digest reaches the same
referrers. Only manifests are written and blobs mounted; nothing is downloaded.

Public entry: ``copy_referrers(client, source_repo, target_repo, digest) -> list[str]``.
"""

from __future__ import annotations

import json
from typing import Any

from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.registry.client import OCI_INDEX, Manifest, RegistryClient, sha256_digest

COSIGN_SUFFIXES = (".sig", ".att", ".sbom")


def fallback_tag(digest: str) -> str:
    algorithm, _, hex_part = digest.partition(":")
    return f"{algorithm}-{hex_part}"


def copy_referrers(client: RegistryClient, source_repo: str, target_repo: str, digest: str) -> list[str]:
    """Copy what refers to ``digest`` in ``source_repo`` into ``target_repo`` where it is not
    there yet; returns what was copied (digests, and ``:tag`` for tags written)."""
    copied: list[str] = []
    descriptors = _listed(client, source_repo, digest)
    for descriptor in descriptors:
        ref = str(descriptor.get("digest", ""))
        if ref and client.head_manifest(target_repo, ref) != ref:
            _copy_tree(client, source_repo, target_repo, ref)
            copied.append(ref)
    if descriptors and client.referrers(target_repo, digest) is None:
        copied += _update_fallback_index(client, target_repo, digest, descriptors)
    for suffix in COSIGN_SUFFIXES:
        tag = fallback_tag(digest) + suffix
        theirs = client.head_manifest(source_repo, tag)
        if theirs and client.head_manifest(target_repo, tag) != theirs:
            manifest = _copy_tree(client, source_repo, target_repo, theirs)
            client.put_manifest(target_repo, tag, manifest)
            copied.append(f":{tag}")
    return copied


def _listed(client: RegistryClient, repository: str, digest: str) -> list[dict[str, Any]]:
    listed = client.referrers(repository, digest)
    if listed is not None:
        return listed
    index = client.get_manifest(repository, fallback_tag(digest))
    if index is None or not index.is_index:
        return []
    return [m for m in index.parsed().get("manifests", []) if isinstance(m, dict)]


def _copy_tree(client: RegistryClient, source_repo: str, target_repo: str, digest: str) -> Manifest:
    manifest = client.get_manifest(source_repo, digest)
    if manifest is None:
        raise ToolkitError.failed(f"{source_repo} lists the referrer {digest} but does not have it")
    data = manifest.parsed()
    if manifest.is_index:
        for child in data.get("manifests", []):
            child_digest = str(child.get("digest", ""))
            if child_digest and client.head_manifest(target_repo, child_digest) != child_digest:
                _copy_tree(client, source_repo, target_repo, child_digest)
    else:
        for blob in [data.get("config", {}), *data.get("layers", [])]:
            blob_digest = str(blob.get("digest", "")) if isinstance(blob, dict) else ""
            if blob_digest and not client.blob_exists(target_repo, blob_digest):
                client.mount_blob(target_repo, blob_digest, source_repo)
    client.put_manifest(target_repo, digest, manifest)
    return manifest


def _update_fallback_index(
    client: RegistryClient, repository: str, digest: str, descriptors: list[dict[str, Any]]
) -> list[str]:
    """The target has no referrers API: add the descriptors to its ``sha256-<hex>`` index."""
    tag = fallback_tag(digest)
    current = client.get_manifest(repository, tag)
    existing = current.parsed().get("manifests", []) if current is not None and current.is_index else []
    known = {m.get("digest") for m in existing if isinstance(m, dict)}
    missing = [d for d in descriptors if d.get("digest") not in known]
    if not missing:
        return []
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [*existing, *missing]}
    body = json.dumps(index, separators=(",", ":")).encode()
    client.put_manifest(repository, tag, Manifest(body, OCI_INDEX, sha256_digest(body)))
    return [f":{tag}"]
