"""Images a step makes besides buildx's output: a loaded tarball (``build.import``), a build
context with injected files (``build.inject``), local tags (``commit:``, and ``push:``
without --push) and pushes of images that exist only in the engine (a committed run
container). Every engine call goes through ``proc`` so it is echoed and dry-run aware."""

from __future__ import annotations

import glob
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_toolkit.core import proc
from ci_toolkit.core.errors import ToolkitError

if TYPE_CHECKING:
    from ci_toolkit.app import App

_LOADED = re.compile(r"^Loaded image(?: ID)?: (\S+)\s*$", re.MULTILINE)


def import_image(tarball: Path, tag: str, app: App) -> str:
    """``docker load`` the tarball and tag what it held as ``tag`` (the step's image)."""
    if not app.dry_run and not tarball.is_file():
        raise ToolkitError.bad_input(f"build.import: file not found: {tarball}")
    done = proc.run(
        ["docker", "load", "--input", str(tarball)],
        app.reporter,
        capture=True,
        env=app.env,
        dry_run=app.dry_run,
        echo=True,
        what="docker load",
    )
    if app.dry_run:
        return tag
    loaded = _LOADED.findall(done.stdout)
    if not loaded:
        raise ToolkitError.failed(f"build.import: {tarball} held no image (docker load said: {done.stdout.strip()})")
    tag_locally(loaded[-1], (tag,), app)
    return tag


def tag_locally(image: str, tags: Sequence[str], app: App) -> None:
    """Give ``image`` more names in the engine; a ``ref@digest`` only in a registry (a step
    built into the build registry) is pulled first."""
    if not tags:
        return
    if "@" in image and not app.dry_run and not _present(image, app):
        _docker(["pull", image], app, "docker pull")
    for tag in tags:
        _docker(["tag", image, tag], app, "docker tag")


def push(tags: Sequence[str], app: App) -> None:
    for tag in tags:
        _docker(["push", tag], app, "docker push")


def _present(image: str, app: App) -> bool:
    done = proc.run(["docker", "image", "inspect", image], app.reporter, capture=True, check=False, env=app.env)
    return done.returncode == 0


def _docker(args: list[str], app: App, what: str) -> None:
    proc.run(["docker", *args], app.reporter, env=app.env, dry_run=app.dry_run, echo=True, what=what)


@contextmanager
def injected_context(build: Mapping[str, Any], project_dir: Path) -> Iterator[str]:
    """buildrunner's ``inject``: a temporary context holding ``path`` (when given) and each
    glob's files at their destination (``dir/`` or ``.`` keeps the file name; a leading ``/``
    is the context's root)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ci-toolkit-context-") as tmp:
        context = Path(tmp) / "context"
        if "path" in build:
            shutil.copytree(inside(project_dir, str(build["path"])), context, symlinks=True)
        else:
            context.mkdir()
        for pattern, dest in build["inject"].items():
            _inject(project_dir, str(pattern), str(dest), context)
        yield str(context)


def _inject(project_dir: Path, pattern: str, dest: str, context: Path) -> None:
    inside(project_dir, pattern)
    matches = sorted(glob.glob(str(project_dir / pattern), recursive=True))
    if not matches:
        raise ToolkitError.bad_input(f"build.inject: {pattern!r} matches no file")
    as_dir = dest.endswith("/") or dest.rstrip("/").endswith(".") or len(matches) > 1
    target = inside(context, dest.lstrip("/") or ".")
    for match in matches:
        source = inside(project_dir, str(Path(match).relative_to(project_dir)))
        where = target / source.name if as_dir else target
        where.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, where, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(source, where)


def inside(base: Path, relative: str, *, what: str = "build.inject") -> Path:
    """``base/relative``, refused when it leads outside ``base`` (``..``, absolute, symlinks)."""
    path = (base / relative).resolve()
    if not path.is_relative_to(base.resolve()):
        raise ToolkitError.bad_input(
            f"{what}: {relative!r} is outside {base}: paths must stay in the project directory"
        )
    return path
