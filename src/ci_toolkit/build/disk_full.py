"""A local cache that cannot be written (a full, read-only or forbidden cache root) loses
nothing: ``current`` stays, the temporary export is removed, the image is built anyway, and
one warning says so: ``cache not saved for KEY: no space left on ROOT (12 MiB free); the
image was built``. Setting ``cache-required`` turns that into a failure (exit 1)."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from ci_toolkit.core.errors import ToolkitError

_REASONS = {
    errno.ENOSPC: "no space left on",
    errno.EDQUOT: "disk quota exceeded on",
    errno.EROFS: "read-only file system at",
    errno.EACCES: "permission denied on",
    errno.EPERM: "permission denied on",
}
_TEXTS = {
    "no space left on device": errno.ENOSPC,
    "disk quota exceeded": errno.EDQUOT,
    "read-only file system": errno.EROFS,
    "permission denied": errno.EACCES,
}


def export_failure(text: str, export_dir: Path) -> int | None:
    """The errno of a buildx failure that is the cache export to ``export_dir`` failing on
    the disk (the build itself went through), else None."""
    if str(export_dir) not in text:
        return None
    lowered = text.lower()
    return next((code for needle, code in _TEXTS.items() if needle in lowered), None)


def is_disk_error(exc: OSError) -> bool:
    return exc.errno in _REASONS


def message(key: str, root: Path, code: int) -> str:
    reason = _REASONS.get(code, "cannot write")
    try:
        free = f" ({shutil.disk_usage(root).free // (1024 * 1024)} MiB free)"
    except OSError:
        free = ""
    return f"cache not saved for {key}: {reason} {root}{free}; the image was built"


def not_saved(text: str, required: bool) -> ToolkitError | None:
    """With cache-required, the warning's text as a failure."""
    if not required:
        return None
    return ToolkitError.failed(text.replace("; the image was built", "; cache-required is set"))
