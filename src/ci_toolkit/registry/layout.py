"""Push an image from an OCI layout directory by digest: no tag is written.

buildx refuses ``push-by-digest`` on the ``docker`` driver, but every driver can export an OCI
layout (``--output type=oci,tar=false``). Its blobs go up through the registry client (each
one only if the repository lacks it), then the manifests, children first, each PUT by its own
digest, so the bytes in the registry are exactly the bytes buildx wrote.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.registry.client import MANIFEST_TYPES, Manifest, RegistryClient, sha256_digest

TYPE_CHECKING = False  # not typing's: importing typing costs every command's start-up (CONTRIBUTING)
if TYPE_CHECKING:
    from typing import Any


def push_layout(client: RegistryClient, repository: str, layout: Path, top: Mapping[str, Any]) -> int:
    """Push the tree under descriptor ``top`` (media type + digest) to ``repository``.
    Returns how many blobs were uploaded (the rest were there already)."""
    client.want_scope(repository, "pull,push")
    return _push(client, repository, layout, str(top.get("mediaType", "")), str(top.get("digest", "")))


def _push(client: RegistryClient, repository: str, layout: Path, media_type: str, digest: str) -> int:
    body = _blob(layout, digest).read_bytes()
    if sha256_digest(body) != digest:
        raise ToolkitError.failed(f"{layout}: blob {digest[:19]} does not match its digest")
    data = json.loads(body)
    media_type = media_type or str(data.get("mediaType", ""))
    if media_type not in MANIFEST_TYPES:
        raise ToolkitError.failed(f"{layout}: {digest[:19]} has unsupported media type {media_type!r}")
    uploaded = 0
    for child in data.get("manifests", []):
        uploaded += _push(client, repository, layout, str(child.get("mediaType", "")), str(child["digest"]))
    for blob in [data.get("config") or {}, *data.get("layers", [])]:
        if blob.get("digest"):
            uploaded += client.upload_blob(repository, str(blob["digest"]), _blob(layout, str(blob["digest"])))
    client.put_manifest(repository, digest, Manifest(body, media_type, digest))
    return uploaded


def _blob(layout: Path, digest: str) -> Path:
    algorithm, _, hexpart = digest.partition(":")
    path = layout / "blobs" / algorithm / hexpart
    if algorithm != "sha256" or not hexpart.isalnum() or not path.is_file():
        raise ToolkitError.failed(f"{layout}: blob {digest} missing from the OCI layout")
    return path
