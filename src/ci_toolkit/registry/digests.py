"""Digest files: what a per-platform job hands to the merge job as a CI artifact.

One small JSON file per platform, named after it (``linux-arm64.json``), so the artifacts of
a matrix land side by side in one directory::

    {"platform": "linux/arm64",
     "images": [{"step": "", "repository": "reg/app", "digest": "sha256:...",
                 "descriptor": {"mediaType": "...", "size": 858, "annotations": {...}}}]}

``build --push-by-digest --digest-dir`` writes one image; ``pipeline run --push-by-digest``
one per step and repository. ``merge`` and ``pipeline merge`` read the directory back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ci_toolkit.core import refs
from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.files import write_atomic

TYPE_CHECKING = False  # not typing's: importing typing costs every command's start-up (CONTRIBUTING)
if TYPE_CHECKING:
    from typing import Any

_ALIASES = {"linux/arm64/v8": "linux/arm64", "linux/amd64/v1": "linux/amd64"}


def platform_key(platform: str) -> str:
    """The form two spellings of one platform share (``linux/arm64/v8`` is ``linux/arm64``)."""
    return _ALIASES.get(platform, platform)


def same_repository(a: str, b: str) -> bool:
    """``reg/app`` and ``reg/app`` spelled differently (``docker.io/library/x`` is ``x``)."""
    return refs.parse_reference(a).repository == refs.parse_reference(b).repository


def file_name(platform: str) -> str:
    return platform_key(platform).replace("/", "-") + ".json"


@dataclass(frozen=True, kw_only=True)
class DigestRecord:
    platform: str
    repository: str
    digest: str
    step: str = ""
    descriptor: Mapping[str, Any] = field(default_factory=dict)
    """buildx's descriptor of the pushed manifest (media type, size, annotations)."""

    def as_dict(self) -> dict[str, Any]:
        data = {"step": self.step, "repository": self.repository, "digest": self.digest}
        return {**data, "descriptor": dict(self.descriptor)} if self.descriptor else data


def write(directory: Path, platform: str, records: Sequence[DigestRecord]) -> Path:
    """Write (replace) the platform's file atomically; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / file_name(platform)
    data = {"platform": platform_key(platform), "images": [r.as_dict() for r in records]}
    write_atomic(path, json.dumps(data, indent=2) + "\n")
    return path


def read(directory: Path) -> list[DigestRecord]:
    """Every record of every ``*.json`` in ``directory`` (subdirectories too: CI artifact
    downloads often put each artifact in a folder of its own)."""
    if not directory.is_dir():
        raise ToolkitError.bad_input(f"--digest-dir {directory}: no such directory")
    records: list[DigestRecord] = []
    for path in sorted(directory.rglob("*.json")):
        records.extend(_records(path))
    return records


def _records(path: Path) -> list[DigestRecord]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        platform = str(data["platform"])
        images = [dict(item) for item in data["images"]]
        return [
            DigestRecord(
                platform=platform,
                repository=str(item["repository"]),
                digest=str(item["digest"]),
                step=str(item.get("step", "")),
                descriptor=dict(item.get("descriptor") or {}),
            )
            for item in images
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ToolkitError.bad_input(f"{path}: not a digest file ({exc})") from exc
