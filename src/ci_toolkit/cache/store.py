"""The local build cache store: one directory per key, immutable generations, an atomic
``current`` pointer, flock-based use marks, garbage collection.

    <entry>/current -> gen-<ns>-<rand>   symlink, replaced with rename(2)
    <entry>/gen-*/                       complete, verified OCI layouts (never written again)
    <entry>/tmp-*/                       exports in progress, flock'ed by their owner
    <entry>/lock                         flock: shared to resolve/create, exclusive to swap/GC
    <entry>/key                          the key's text (for ``cache ls``)

A build opens a ``Session``: it resolves ``current`` once and holds a shared flock on that
generation's directory until it ends, so GC (which needs an exclusive flock) never removes
it. Buildx exports into a fresh ``tmp-*`` pre-seeded with hard links to the blobs of the
generation read (blobs are content-addressed and replaced only by rename, so a link is
never written through): unchanged layers are not copied again. ``commit`` verifies the
export, drops blobs nothing references (this is what bounds the size), renames it to a
generation and swaps the pointer. A killed build leaves only a ``tmp-*`` whose flock died
with it; the next GC reaps it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ci_toolkit.core.files import fsync_dir, read_no_follow, write_atomic

GRACE_SECONDS = 10.0
_MANIFEST_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    }
)
LEGACY_FILES = ("index.json", "oci-layout", "index.json.lock", "blobs", "ingest")


class InvalidLayout(Exception):
    """An export that must not become a generation."""


# --- verification -------------------------------------------------------------------------


def verify_layout(path: Path) -> set[str]:
    """Check an OCI layout: index.json parses and every blob it references, transitively,
    exists with its declared size. Returns the referenced blob hex digests."""
    try:
        index = json.loads((path / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidLayout(f"{path}/index.json: {exc}") from exc
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise InvalidLayout(f"{path}/index.json: no manifests list")
    seen: set[str] = set()
    stack: list[object] = list(index["manifests"])
    while stack:
        desc = stack.pop()
        hexdigest, media_type = _check_descriptor(path, desc)
        if hexdigest in seen:
            continue
        seen.add(hexdigest)
        if media_type in _MANIFEST_TYPES:
            stack.extend(_children(path, hexdigest))
    return seen


def _check_descriptor(path: Path, desc: object) -> tuple[str, str]:
    if not isinstance(desc, dict) or not isinstance(desc.get("digest"), str):
        raise InvalidLayout(f"{path}: malformed descriptor {desc!r:.80}")
    algo, _, hexdigest = desc["digest"].partition(":")
    if algo != "sha256" or len(hexdigest) != 64 or not all(c in "0123456789abcdef" for c in hexdigest):
        raise InvalidLayout(f"{path}: unsupported digest {desc['digest']!r:.80}")
    blob = path / "blobs" / "sha256" / hexdigest
    try:
        size = blob.stat().st_size
    except OSError as exc:
        raise InvalidLayout(f"{path}: missing blob sha256:{hexdigest}") from exc
    if isinstance(desc.get("size"), int) and desc["size"] != size:
        raise InvalidLayout(f"{path}: blob sha256:{hexdigest} has {size} bytes, expected {desc['size']}")
    return hexdigest, str(desc.get("mediaType", ""))


def _children(path: Path, hexdigest: str) -> list[object]:
    try:
        doc = json.loads((path / "blobs" / "sha256" / hexdigest).read_bytes())
    except (OSError, ValueError) as exc:
        raise InvalidLayout(f"{path}: manifest sha256:{hexdigest} does not parse") from exc
    if not isinstance(doc, dict):
        raise InvalidLayout(f"{path}: manifest sha256:{hexdigest} is not an object")
    found: list[object] = []
    for field in ("manifests", "layers"):
        if isinstance(doc.get(field), list):
            found.extend(doc[field])
    if doc.get("config") is not None:
        found.append(doc["config"])
    return found


TREE = "tree"
TREE_FILE = "tree.tar"


def verify_tree(path: Path) -> None:
    """A ``tree`` export: exactly one complete, readable tar file."""
    import tarfile

    extra = [p.name for p in path.iterdir() if p.name != TREE_FILE]
    if extra:
        raise InvalidLayout(f"{path}: unexpected files {', '.join(sorted(extra))}")
    try:
        with tarfile.open(path / TREE_FILE, "r") as archive:
            for _ in archive:
                pass
    except (OSError, tarfile.TarError) as exc:
        raise InvalidLayout(f"{path}/{TREE_FILE}: {exc}") from exc


# --- locks --------------------------------------------------------------------------------


def _lock_fd(path: Path, mode: int, *, blocking: bool = True, create: bool = True) -> int | None:
    """Open ``path`` (file or directory) and flock it; None if ``blocking`` is False and the
    lock is taken. The descriptor is close-on-exec, so buildx never inherits it. Without
    ``create`` a missing file is FileNotFoundError: readers (``cache ls``) create nothing."""
    # O_NOFOLLOW: a lock (or generation) planted as a symlink is refused, never opened through.
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else os.O_CREAT if create else 0)
    fd = os.open(path, flags | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, mode | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def entry_lock(entry: Path, mode: int, *, create: bool = True) -> Iterator[None]:
    """The entry's ``lock`` file, re-opened if the entry was replaced while we waited. Without
    ``create``, an entry removed meanwhile (another prune) is FileNotFoundError, not re-made."""
    while True:
        fd = _lock_fd(entry / "lock", mode, create=create)
        assert fd is not None
        try:
            if os.fstat(fd).st_ino == os.stat(entry / "lock").st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
        if create:
            entry.mkdir(parents=True, exist_ok=True)
    try:
        yield
    finally:
        os.close(fd)


def _is_free(path: Path) -> bool:
    try:
        fd = _lock_fd(path, fcntl.LOCK_EX, blocking=False, create=False)
    except FileNotFoundError:
        return True  # removed meanwhile: nobody uses it
    except OSError:
        return False
    if fd is None:
        return False
    os.close(fd)
    return True


# --- the entry ----------------------------------------------------------------------------


def current_generation(entry: Path) -> Path | None:
    try:
        target = os.readlink(entry / "current")
    except OSError:
        return None
    # Only our own names count: a pointer can never lead outside the entry.
    if "/" in target or not target.startswith("gen-"):
        return None
    gen = entry / target
    return gen if gen.is_dir() else None


def has_legacy_layout(entry: Path) -> bool:
    """A directory a raw ``--cache-to type=local,dest=`` wrote into (the seed's setting)."""
    return (entry / "index.json").is_file() and not (entry / "current").is_symlink()


@dataclass
class Session:
    """One build's use of an entry: read ``source``, export into ``export_dir``, ``commit``."""

    entry: Path
    source: Path | None
    export_dir: Path
    grace: float = GRACE_SECONDS
    _source_fd: int | None = None
    _export_fd: int | None = None
    committed: Path | None = None
    kind: str = "oci"
    """``oci``: a buildx cache export; ``tree``: one ``TREE_FILE`` tar of a directory."""

    def unchanged(self) -> bool:
        """The export's cache manifest is the one ``current`` has: nothing to swap in. BuildKit
        writes index.json last and names the cache manifest by digest, so equal bytes mean
        an identical cache; one small read instead of verifying the whole export."""
        if self.source is None or self.source == self.entry:
            return False
        try:
            exported = (self.export_dir / "index.json").read_bytes()
            return exported == (self.source / "index.json").read_bytes()
        except OSError:
            return False

    def commit(self) -> Path:
        """Verify the export, drop unreferenced blobs, make it a generation, swap ``current``
        and collect old generations. Raises InvalidLayout (the pointer is then untouched)."""
        if self.kind == TREE:
            verify_tree(self.export_dir)
        else:
            _drop_unreferenced(self.export_dir, verify_layout(self.export_dir))
        self._release_source()
        legacy = self.source == self.entry
        with entry_lock(self.entry, fcntl.LOCK_EX):
            gen = self.entry / f"gen-{time.time_ns():020d}-{os.urandom(4).hex()}"
            os.rename(self.export_dir, gen)
            pointer = self.entry / f"current.new-{os.urandom(4).hex()}"
            try:
                os.symlink(gen.name, pointer)
                os.replace(pointer, self.entry / "current")
            except OSError:
                # A full or read-only disk: ``current`` is untouched; the export goes back to
                # where close() discards it, and the caller warns.
                with contextlib.suppress(OSError):
                    pointer.unlink()
                os.rename(gen, self.export_dir)
                raise
            fsync_dir(self.entry)
            self.committed = gen
            self._release_export()
            if legacy:
                _remove_legacy(self.entry)
            collect(self.entry, grace=self.grace, locked=True)
        return gen

    def close(self) -> None:
        """End of the build: release the marks; an uncommitted export is discarded."""
        self._release_source()
        if self.committed is None and self._export_fd is not None:
            _discard(self.export_dir)
        self._release_export()

    def _release_source(self) -> None:
        if self._source_fd is not None:
            os.close(self._source_fd)
            self._source_fd = None

    def _release_export(self) -> None:
        if self._export_fd is not None:
            os.close(self._export_fd)
            self._export_fd = None


def open_session(entry: Path, key: str, *, grace: float = GRACE_SECONDS, kind: str = "oci") -> Session:
    """Resolve ``current`` once, mark it in use, create the owner-locked export directory."""
    entry.mkdir(parents=True, exist_ok=True)
    with entry_lock(entry, fcntl.LOCK_SH):
        _write_key(entry, key)
        source = current_generation(entry)
        if source is None and has_legacy_layout(entry):
            source = entry
        source_fd = _lock_fd(source, fcntl.LOCK_SH) if source is not None and source != entry else None
        export = entry / f"tmp-{os.getpid()}-{os.urandom(6).hex()}"
        export.mkdir()
        export_fd = _lock_fd(export, fcntl.LOCK_EX)
    os.utime(entry / "lock")
    if source is not None and kind != TREE:
        _seed(source, export)
    return Session(entry, source, export, grace, source_fd, export_fd, kind=kind)


def plan_session(entry: Path) -> Session:
    """Dry run: what a session would use, creating nothing."""
    source = current_generation(entry)
    if source is None and has_legacy_layout(entry):
        source = entry
    return Session(entry, source, entry / "tmp-<pid>-<random>")


def _write_key(entry: Path, key: str) -> None:
    path = entry / "key"
    if not path.is_file() or path.is_symlink():
        write_atomic(path, key + "\n")


def _seed(source: Path, export: Path) -> None:
    blobs = source / "blobs" / "sha256"
    if not blobs.is_dir():
        return
    target = export / "blobs" / "sha256"
    target.mkdir(parents=True)
    for blob in blobs.iterdir():
        with contextlib.suppress(OSError):
            os.link(blob, target / blob.name)


def _drop_unreferenced(layout: Path, referenced: set[str]) -> None:
    blobs = layout / "blobs" / "sha256"
    for blob in blobs.iterdir():
        if blob.name not in referenced:
            blob.unlink()
    shutil.rmtree(layout / "ingest", ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        (layout / "index.json.lock").unlink()


def _remove_legacy(entry: Path) -> None:
    for name in LEGACY_FILES:
        path = entry / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _discard(path: Path) -> None:
    """Rename first so a writer still running into it fails instead of re-creating files."""
    gone = path.with_name(f"del-{path.name}")
    try:
        os.rename(path, gone)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            shutil.rmtree(path, ignore_errors=True)
        return
    shutil.rmtree(gone, ignore_errors=True)


# --- garbage collection -------------------------------------------------------------------


@dataclass(frozen=True)
class Collected:
    """The generations and temporaries a collection removed (or would remove, in a dry run)."""

    generations: tuple[str, ...]
    temporaries: tuple[str, ...]


def collect(entry: Path, *, grace: float = GRACE_SECONDS, locked: bool = False, dry_run: bool = False) -> Collected:
    """Remove generations that are not current, not in use and older than ``grace`` seconds,
    and exports whose owner is gone."""
    if not locked:
        try:
            with entry_lock(entry, fcntl.LOCK_EX, create=False):
                return collect(entry, grace=grace, locked=True, dry_run=dry_run)
        except FileNotFoundError:  # the whole entry went (a concurrent prune): nothing to do
            return Collected((), ())
    current = current_generation(entry)
    now = time.time()
    gens: list[str] = []
    temps: list[str] = []
    for child in sorted(entry.iterdir()):
        name = child.name
        if name.startswith("gen-") and child != current and child.is_dir():
            if now - _mtime(child) >= grace and _is_free(child):
                gens.append(name)
        elif name.startswith("tmp-") and child.is_dir():
            if _is_free(child):
                temps.append(name)
        elif name.startswith(("del-", "current.new-")):
            temps.append(name)
    if not dry_run:
        for name in [*gens, *temps]:
            path = entry / name
            if path.is_symlink():
                path.unlink()
            elif name.startswith("del-"):
                shutil.rmtree(path, ignore_errors=True)
            else:
                _discard(path)
    return Collected(tuple(gens), tuple(temps))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


# --- listing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntryInfo:
    """One cache entry as ``cache ls`` shows it."""

    key: str
    path: Path
    size: int
    generations: int
    last_used: float
    in_use: bool
    mounts: tuple[tuple[str, int], ...] = ()
    """The cache mounts ``current`` holds: (key, bytes)."""


def entries(root: Path) -> list[EntryInfo]:
    if not root.is_dir():
        return []
    found = []
    for child in sorted(root.iterdir()):
        lock = child / "lock"
        if child.name.startswith(".del-"):
            continue  # an entry being removed
        if child.is_dir() and not child.is_symlink() and lock.is_file() and not lock.is_symlink():
            with contextlib.suppress(FileNotFoundError):  # removed by a concurrent prune
                found.append(describe(child))
    return found


def describe(entry: Path) -> EntryInfo:
    try:
        # A key planted as a symlink is not read: `cache ls` would print whatever it points at.
        key = read_no_follow(entry / "key", 4096).strip()
    except OSError:
        key = entry.name
    gens = [c for c in entry.iterdir() if c.name.startswith("gen-") and c.is_dir()]
    current = current_generation(entry)
    from ci_toolkit.cache import mounts  # here: a build without cache mounts never loads it

    return EntryInfo(
        key=key,
        path=entry,
        size=disk_usage(entry),
        generations=len(gens),
        last_used=(entry / "lock").stat().st_mtime,
        in_use=any(not _is_free(g) for g in gens) or (current is not None and not _is_free(current)),
        mounts=tuple((m.key, m.size) for m in mounts.read_index(current)),
    )


def disk_usage(path: Path) -> int:
    """Bytes on disk, each hard-linked inode counted once (generations share blobs)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames + dirnames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            ident = (st.st_dev, st.st_ino)
            if ident not in seen:
                seen.add(ident)
                total += st.st_blocks * 512
    return total


def remove_entry(entry: Path) -> bool:
    """Remove a whole entry unless one of its generations is in use. True if removed; False
    also when a concurrent prune removed it first."""
    try:
        with entry_lock(entry, fcntl.LOCK_EX, create=False):
            gens = [c for c in entry.iterdir() if c.name.startswith(("gen-", "tmp-")) and c.is_dir()]
            if any(not _is_free(g) for g in gens):
                return False
            gone = entry.with_name(f".del-{entry.name}-{os.urandom(4).hex()}")
            os.rename(entry, gone)
    except FileNotFoundError:
        return False
    shutil.rmtree(gone, ignore_errors=True)
    return True
