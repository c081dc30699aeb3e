"""Moving a directory between a host tar file and a container, through the engine's archive
API (``docker cp``'s): no bind mount, so the files keep the ownership the container gave them
and nothing the container does can reach the host copy.

``save`` writes the directory as the engine returns it (its top entry is the directory's own
name); ``restore`` unpacks such a file at the same path in a created, not yet started,
container (the engine creates missing parent directories).
"""

from __future__ import annotations

import contextlib
from pathlib import Path, PurePosixPath
from typing import Any

from ci_toolkit.core.errors import ToolkitError


def save(api: Any, container: str, path: str, target: Path) -> bool:
    """The container's ``path`` into the tar file ``target``; False when it does not exist."""
    import docker.errors

    try:
        stream, _ = api.get_archive(container, path)
        with target.open("wb") as out:
            for chunk in stream:
                out.write(chunk)
    except docker.errors.NotFound:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        return False
    except docker.errors.APIError as exc:
        raise ToolkitError.failed(f"cannot read {path} from the container: {exc.explanation or exc}") from exc
    return True


def restore(api: Any, container: str, path: str, source: Path) -> None:
    """Unpack ``source`` (written by ``save``, of any directory name) at ``path``."""
    import tempfile

    import docker.errors

    where = PurePosixPath(path)
    with tempfile.TemporaryFile() as renamed:
        _renamed(source, renamed, str(where.relative_to("/")))
        renamed.seek(0)
        try:
            api.put_archive(container, "/", renamed)
        except docker.errors.APIError as exc:
            raise ToolkitError.failed(f"cannot restore {path} into the container: {exc.explanation or exc}") from exc


def _renamed(source: Path, out: Any, prefix: str) -> None:
    """``source``'s members with their first path component replaced by ``prefix``."""
    import tarfile  # imports shutil: only when a cache is restored, not at start-up

    with tarfile.open(source, "r") as tin, tarfile.open(fileobj=out, mode="w") as tout:
        for member in tin:
            rest = member.name.partition("/")[2]
            member.name = f"{prefix}/{rest}" if rest else prefix
            if member.islnk() and member.linkname:
                member.linkname = f"{prefix}/{member.linkname.partition('/')[2]}"
            tout.addfile(member, tin.extractfile(member) if member.isfile() else None)
