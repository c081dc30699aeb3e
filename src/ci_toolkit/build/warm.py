"""What keeps a build warm on a fresh engine, around the buildx call: restore the cache
mounts before it, save (or carry over) them after it, commit the cache generation unless it
is unchanged, and account for all of it in an ``Outcome`` the result reports."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from ci_toolkit.build import disk_full
from ci_toolkit.cache import last_build
from ci_toolkit.cache import store as cache_store
from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.report import Reporter
from ci_toolkit.core.settings import Settings
from ci_toolkit.core.units import parse_size

TYPE_CHECKING = False  # not typing's: importing typing costs every command's start-up (CONTRIBUTING)
if TYPE_CHECKING:
    from typing import Any

    from ci_toolkit.cache import mounts as cache_mounts


@dataclasses.dataclass
class Outcome:
    """The cache side of one build, for the summary, the outputs and ``--json``."""

    imported_bytes: int = 0
    import_seconds: float = 0.0
    export: str = "none"
    """committed, unchanged (nothing new: the export is dropped), failed, or none."""
    generation: str = ""
    mounts: tuple[str, ...] = ()
    mounts_restored_bytes: int = 0
    mounts_saved_bytes: int = 0
    mounts_state: str = "none"
    """restored/saved/unchanged/carried/failed steps joined, or none."""
    entry: str = ""
    """The local store entry (what a CI cache service carries)."""
    transport: str = "none"
    """The CI cache that carries the entry (``cache-transport``), or none."""
    transport_restored: str = ""
    """The CI cache key the entry was restored from (the launcher tells us), if any."""
    unsaved: str = ""
    """Why the cache could not be saved (a full, read-only or forbidden disk), if so."""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"mounts": list(self.mounts)}


def transport(settings: Settings, env: Mapping[str, str], provider: str) -> str:
    """``cache-transport`` with ``auto`` resolved: GitHub-hosted runners lose their disk."""
    if settings.cache_transport != "auto":
        return settings.cache_transport
    hosted = provider == "github" and env.get("RUNNER_ENVIRONMENT") == "github-hosted"
    return "actions-cache" if hosted else "none"


def travel(session: cache_store.Session, outcome: Outcome, env: Mapping[str, str]) -> None:
    """After the commit, for a CI cache: only ``current`` stays, so the saved archive holds
    exactly one generation and never grows."""
    outcome.transport_restored = env.get("CI_TOOLKIT_TRANSPORT_RESTORED", "")
    if outcome.transport == "none":
        return
    session.close()
    cache_store.collect(session.entry, grace=0)


def record(entry: Path, outcome: Outcome) -> None:
    """What ``cache ls`` shows of this build, kept beside the entry; not after an unchanged
    build of an entry a CI cache carries: its folder stays byte for byte as restored, so a CI
    cache that uploads a folder again when its content changed (Cirrus' reupload_on_changes)
    uploads nothing."""
    if outcome.transport != "none" and outcome.export == "unchanged":
        return
    last_build.record(entry, outcome.as_dict())


def find_mounts(
    dockerfile_text: str | None, dockerfile: str, settings: Settings
) -> tuple[cache_mounts.CacheMount, ...]:
    """The cache mounts to keep for this build (``cache-mounts`` setting). A Dockerfile that
    never says "cache" has none, and the parser is not even loaded (most builds)."""
    if settings.cache_mounts == ["none"]:
        return ()
    text = dockerfile_text
    if text is None:
        try:
            text = Path(dockerfile).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ()
    if "cache" not in text:
        return ()
    from ci_toolkit.cache import mounts as cache_mounts

    return cache_mounts.select(cache_mounts.find(text), settings.cache_mounts)


def helper(settings: Settings, build_args: Mapping[str, str], builder: str, env: Mapping[str, str],
           reporter: Reporter) -> cache_mounts.Helper:  # fmt: skip
    image = settings.cache_mounts_image
    first = image.split("/", 1)[0]
    if "/" not in image or not ("." in first or ":" in first or first == "localhost"):
        image = f"{build_args.get('DOCKER_REGISTRY', settings.docker_registry)}/{image}"
    from ci_toolkit.cache import mounts as cache_mounts

    return cache_mounts.Helper(image=image, builder=builder, env=env, reporter=reporter, build_args=build_args)


def imported(session: cache_store.Session, outcome: Outcome) -> None:
    """Bytes of the generation the build reads (its blobs; one stat each)."""
    if session.source is None:
        return
    blobs = session.source / "blobs" / "sha256"
    try:
        outcome.imported_bytes = sum(b.stat().st_size for b in blobs.iterdir())
    except OSError:
        outcome.imported_bytes = 0


def restore(help_: cache_mounts.Helper, session: cache_store.Session,
            mounts: Sequence[cache_mounts.CacheMount], outcome: Outcome) -> None:  # fmt: skip
    """Before the build. A failure leaves the build running without them, with one warning."""
    from ci_toolkit.cache import mounts as cache_mounts

    outcome.mounts = tuple(m.key for m in mounts)
    if session.source is None or not cache_mounts.read_index(session.source):
        return
    try:
        outcome.mounts_restored_bytes = cache_mounts.restore(help_, session.source, mounts)
        # Nothing unpacked: the engine kept its caches (a persistent runner); they are newer.
        outcome.mounts_state = "restored" if outcome.mounts_restored_bytes else "kept by the engine"
    except (ToolkitError, OSError) as exc:
        help_.reporter.warning(f"cache mounts not restored ({_why(exc)}); building without them")
        outcome.mounts_state = "restore failed"


def save(help_: cache_mounts.Helper, session: cache_store.Session, mounts: Sequence[cache_mounts.CacheMount],
         ran: Sequence[str], settings: Settings, outcome: Outcome) -> bool:  # fmt: skip
    """After a successful build, into the export (only what changed since ``current``, where
    that is small). True when new content was saved (the generation then differs from
    ``current`` even if the layer cache does not)."""
    from ci_toolkit.cache import mounts as cache_mounts

    source = session.source if session.source is not None and cache_mounts.read_index(session.source) else None
    if source is not None and not any("type=cache" in step for step in ran):
        # No step that uses a cache mount ran: the content is what the source holds.
        with _contained(help_.reporter, "cache mounts not carried over"):
            outcome.mounts_saved_bytes = cache_mounts.carry(source, session.export_dir)
            outcome.mounts_state = "carried" if outcome.mounts_state == "none" else f"{outcome.mounts_state}, carried"
        return False
    started = time.monotonic()
    try:
        limit = parse_size(settings.cache_mounts_max_size, "cache-mounts-max-size")
        outcome.mounts_saved_bytes, changed = cache_mounts.save(help_, session.export_dir, mounts, limit, source)
    except (ToolkitError, OSError) as exc:
        help_.reporter.warning(f"cache mounts not saved ({_why(exc)}); the previous ones stay")
        outcome.mounts_state = "save failed"
        if source is not None:
            with _contained(help_.reporter, "cache mounts not carried over"):
                cache_mounts.carry(source, session.export_dir)
        return False
    state = "saved" if changed else "unchanged"
    outcome.mounts_state = state if outcome.mounts_state == "none" else f"{outcome.mounts_state}, {state}"
    help_.reporter.debug(f"cache mounts {state} in {time.monotonic() - started:.1f}s")
    return changed


def commit(session: cache_store.Session, reporter: Reporter, outcome: Outcome, *, mounts_changed: bool) -> None:
    # The image is built either way: a cache that fails its check is dropped, not fatal.
    if not mounts_changed and session.unchanged():
        reporter.debug(f"cache unchanged: {session.source} stays current, the export is dropped")
        outcome.export = "unchanged"
        outcome.generation = session.source.name if session.source else ""
        # No swap, but the collection a commit does still runs: killed exports are reaped.
        session.close()
        with _contained(reporter, "old cache generations not collected"):
            cache_store.collect(session.entry, grace=session.grace)
        return
    try:
        gen = session.commit()
    except cache_store.InvalidLayout as exc:
        reporter.warning(f"cache export not kept ({exc}); the previous cache stays current")
        outcome.export = "failed"
        return
    except OSError as exc:
        outcome.export = "failed"
        if disk_full.is_disk_error(exc):  # the caller warns (or fails with cache-required)
            outcome.unsaved = disk_full.message(session.entry.name, session.entry.parent, exc.errno or 0)
            return
        reporter.warning(f"cache export not kept ({exc.strerror or exc}); the previous cache stays current")
        return
    outcome.export, outcome.generation = "committed", gen.name
    reporter.debug(f"cache generation {gen} is now current")


def _why(exc: BaseException) -> str:
    if isinstance(exc, ToolkitError):
        return exc.message.splitlines()[0]
    return str(getattr(exc, "strerror", None) or exc)


class _contained:
    """An OSError in a best-effort step becomes one warning."""

    def __init__(self, reporter: Reporter, what: str) -> None:
        self.reporter, self.what = reporter, what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _tb: object) -> bool:
        if isinstance(exc, OSError):
            self.reporter.warning(f"{self.what} ({_why(exc)})")
            return True
        return False
