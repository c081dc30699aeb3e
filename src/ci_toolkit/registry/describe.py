"""What a pushed image is, per platform: its manifest digest and its size (config + layers,
compressed, as the registry stores them), read from the manifests alone (no blob but, for a
single-platform image, its small config to name the platform).

Public entry: ``describe(client, repository, digest) -> list[PlatformImage]``.
"""

from __future__ import annotations

from dataclasses import dataclass

TYPE_CHECKING = False  # not typing's: importing typing costs every command's start-up (CONTRIBUTING)
if TYPE_CHECKING:
    from typing import Any

    from ci_toolkit.registry.client import RegistryClient


@dataclass(frozen=True, kw_only=True)
class PlatformImage:
    """One platform of a pushed image: its manifest digest and size."""

    platform: str
    digest: str
    size: int


def describe(client: RegistryClient, repository: str, digest: str) -> list[PlatformImage]:
    top = client.get_manifest(repository, digest)
    if top is None:
        return []
    data = top.parsed()
    if not top.is_index:
        config = client.get_blob_json(repository, str(data.get("config", {}).get("digest", "")))
        return [PlatformImage(platform=_platform(config), digest=top.digest, size=_size(data))]
    images = []
    for entry in data.get("manifests", []):
        platform = entry.get("platform") or {}
        if platform.get("os") in (None, "unknown"):
            continue  # buildx's attestation manifests
        child = client.get_manifest(repository, str(entry.get("digest", "")))
        if child is not None:
            images.append(PlatformImage(platform=_platform(platform), digest=child.digest, size=_size(child.parsed())))
    return images


def _platform(value: dict[str, Any]) -> str:
    parts = (value.get("os"), value.get("architecture"), value.get("variant"))
    return "/".join(str(p) for p in parts if p) or "-"


def _size(manifest: dict[str, Any]) -> int:
    blobs = [manifest.get("config") or {}, *(manifest.get("layers") or [])]
    return sum(int(b.get("size", 0)) for b in blobs if isinstance(b, dict))
