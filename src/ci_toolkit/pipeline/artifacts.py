"""``run.artifacts``: files a run step leaves in its mounted directory, collected into the
results directory (``<results>/<step>/``) and listed in the results file, as buildrunner's
``artifacts:`` (a file is copied; a directory is archived as ``.tar.gz`` unless
``format: uncompressed`` copies it as it is, ``type: zip`` zips it; ``rename`` names it)."""

from __future__ import annotations

import glob
import shutil
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from ci_toolkit.core.errors import ToolkitError

_CONTROL = ("format", "type", "compression", "rename", "push")
_COMPRESSION: dict[str, Literal["w:gz", "w:bz2", "w:xz"]] = {
    "gz": "w:gz",
    "bz2": "w:bz2",
    "xz": "w:xz",
    "lzma": "w:xz",
}


def collect(
    patterns: Mapping[str, Any], workdir: Path, mount_point: str, results: Path, step: str
) -> dict[str, dict[str, Any]]:
    """Copy what each glob matches; returns ``"<step>/<name>" -> properties``."""
    found: dict[str, dict[str, Any]] = {}
    for pattern, props in patterns.items():
        props = dict(props or {})
        relative = _relative(str(pattern), mount_point)
        matches = sorted(glob.glob(str(workdir / relative), recursive=True))
        if not matches:
            raise ToolkitError.failed(f"artifacts: {pattern!r} matched nothing in {mount_point}")
        for match in matches:
            source = Path(match)
            if not source.resolve().is_relative_to(workdir.resolve()):
                raise ToolkitError.failed(f"artifacts: {match} is outside {mount_point}")
            name, kind = _copy(source, results / step, props)
            entry = {k: v for k, v in props.items() if k not in _CONTROL}
            found[f"{step}/{name}"] = {"type": props.get("type", kind), **entry}
    return found


def _relative(pattern: str, mount_point: str) -> str:
    if pattern.startswith("/"):
        prefix = mount_point.rstrip("/") + "/"
        if not pattern.startswith(prefix):
            raise ToolkitError.bad_input(f"artifacts: {pattern!r} is outside {mount_point}; only its files are kept")
        return pattern[len(prefix) :]
    return pattern


def _copy(source: Path, target_dir: Path, props: Mapping[str, Any]) -> tuple[str, str]:
    target_dir.mkdir(parents=True, exist_ok=True)
    name = str(props.get("rename") or source.name)
    if source.is_file():
        shutil.copy2(source, target_dir / name)
        return name, "file"
    if props.get("format") == "uncompressed":
        shutil.copytree(source, target_dir / name, symlinks=True, dirs_exist_ok=True)
        return name, "directory"
    if props.get("type") == "zip":
        made = shutil.make_archive(str(target_dir / name), "zip", root_dir=source.parent, base_dir=source.name)
        return Path(made).name, "zip"
    mode = _COMPRESSION.get(str(props.get("compression", "gz")), "w:gz")
    archive = f"{name}.tar.{mode[2:]}" if "rename" not in props else name
    with tarfile.open(target_dir / archive, mode) as out:
        out.add(source, arcname=source.name)
    return archive, "tar"
