"""Writing a file the safe way: all at once, durable, and never through a link someone else
planted. Every file the toolkit writes on the user's behalf (mirror render -o, the builder's
buildkitd.toml, metadata and digest files, artifacts.json, the cache's key file) goes here.

A fixed temporary name (``.NAME.tmp``) lets another local user plant a symlink there and have
the write land on a file of their choosing; two writers also collide on it. ``mkstemp``
creates a fresh name with O_EXCL (never an existing file, never a symlink), ``fsync`` makes
the content durable before ``os.replace`` swaps it in (replacing a symlink at the target, not
following it), and the directory is synced so the rename survives a crash too."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from ci_toolkit.core.errors import ToolkitError


def write_atomic(
    path: Path, data: str | bytes, *, mode: int = 0o644, parents: bool = False, what: str = "", durable: bool = True
) -> None:
    """Replace ``path`` with ``data`` (creating its directory with ``parents``); an existing
    regular file keeps its permission bits. Failures are ToolkitError (``what``, else "cannot
    write PATH", with the reason): a path that cannot hold a file exit 2, anything else exit 1.
    ``durable=False`` skips both fsyncs (tens of ms on a busy disk) for a file whose loss in a
    crash costs nothing (a record for display): still all or nothing, never through a link."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        if parents:
            path.parent.mkdir(parents=True, exist_ok=True)
        _write(path, payload, _mode_of(path, mode), durable=durable)
    except OSError as exc:
        raise ToolkitError.from_os_error(exc, what or f"cannot write {path}") from exc


def _write(path: Path, payload: bytes, mode: int, *, durable: bool) -> None:
    import tempfile  # here: tempfile (with shutil and random) is not needed to start a command

    directory = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(directory)


def _mode_of(path: Path, default: int) -> int:
    try:
        st = os.lstat(path)
    except OSError:
        return default
    return stat.S_IMODE(st.st_mode) if stat.S_ISREG(st.st_mode) else default


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_no_follow(path: Path, limit: int = 1 << 20) -> str:
    """A small text file's content; a symlink there is refused (OSError ELOOP), never read."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        return fh.read(limit).decode("utf-8", errors="replace")
