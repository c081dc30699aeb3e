"""What one build is asked for and what it produces: shared by ``execute`` and its callers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ci_toolkit.core.ci import CIContext
from ci_toolkit.core.report import Reporter
from ci_toolkit.core.settings import Settings

TYPE_CHECKING = False  # not typing's: importing typing costs every command's start-up (CONTRIBUTING)
if TYPE_CHECKING:
    from typing import Any, Protocol
else:
    Protocol = object  # the protocol is for mypy; nothing checks it at run time


class BuildHost(Protocol):
    """What a build needs from its caller; ``App`` satisfies it."""

    @property
    def settings(self) -> Settings: ...
    @property
    def env(self) -> Mapping[str, str]: ...
    @property
    def ci(self) -> CIContext: ...
    @property
    def reporter(self) -> Reporter: ...
    @property
    def cwd(self) -> Path: ...
    @property
    def dry_run(self) -> bool: ...


@dataclass(frozen=True, kw_only=True)
class BuildRequest:
    """Everything one build needs. Relative paths resolve against ``host.cwd``.

    ``dockerfile`` is a path (default ``<context>/Dockerfile``); ``dockerfile_text`` is an
    inline Dockerfile sent on stdin (``-f -``); give at most one.
    ``cache_backend``/``cache_root``/``cache_ref``/``builder`` empty: take the setting.
    ``cache_key`` empty: ``CONTAINER_NAME`` from the environment, else derived from the first
    tag's repository + target + platforms.
    ``extra_args`` None: read and expand the variable named by the ``extra-args-env`` setting
    (``CI_IMAGE_BUILD_EXTRA_ARGS``); a tuple: these tokens, already expanded.
    ``secrets`` are buildx ``--secret`` specs (``id=x,src=path`` / ``id=x,env=VAR``); the value
    of an ``env=`` secret is masked in all output.
    ``tag_rules``/``tag_images``/``tag_flavor``: tags, labels (and the version label) from the
    git context, with docker/metadata-action's rules.
    """

    context: str = "."
    dockerfile: str = ""
    dockerfile_text: str | None = None
    target: str = ""
    platforms: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    push: bool = False
    load: bool = False
    push_by_digest: bool = False
    """Push the one platform's image to each ``tags`` repository by digest, with no tag."""
    build_args: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    build_contexts: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    cache_key: str = ""
    cache_backend: str = ""
    cache_ref: str = ""
    cache_root: str = ""
    extra_args: tuple[str, ...] | None = None
    metadata_file: str = ""
    builder: str = ""
    tag_rules: str | None = None
    """metadata-action tag rules (``build.tags``); None: no tags from the git context, "": its
    default rules. The tags go to ``tag_images`` (default: the repositories of ``tags``)."""
    tag_images: tuple[str, ...] = ()
    tag_flavor: str = ""
    provenance: str = ""
    """buildx ``--provenance`` (``true``, ``false``, ``mode=max``...); empty: buildx's default."""
    sbom: str = ""
    """buildx ``--sbom`` (``true``, ``false``, ``generator=IMAGE``); empty: none."""
    attests: tuple[str, ...] = ()
    """buildx ``--attest`` specs (``type=sbom,generator=...``)."""
    annotations: tuple[str, ...] = ()
    """buildx ``--annotation`` values, ``[LEVEL:]KEY=VALUE`` (LEVEL: manifest, index, ...)."""
    no_cache: bool = False
    pull: bool = False
    ssh: tuple[str, ...] = ()
    """buildx ``--ssh`` specs (``default``, ``id=path``)."""
    network: str = ""
    """buildx ``--network`` for RUN: ``default``, ``none`` or ``host``."""
    outputs: tuple[str, ...] = ()
    """buildx ``--output`` specs (``type=local,dest=out``); exclusive with push/load."""
    cache_from: tuple[str, ...] = ()
    """Extra ``--cache-from`` sources besides the planned cache (images or type=... specs)."""


@dataclass(frozen=True, kw_only=True)
class BuildResult:
    """What one build produced: image, digest, cache use and timings."""

    digest: str
    image_refs: tuple[str, ...]
    cache_key: str
    cache_backend: str
    cache_hits: int
    """Build steps served from cache (buildx ``CACHED``, or fetched from an imported cache: ``build.progress``)."""
    cache_steps: int
    """Build steps counted in total (Dockerfile instructions)."""
    durations: Mapping[str, float]
    """Seconds: ``build`` (buildx), ``cache`` (verify + swap + GC), ``total``."""
    metadata: Mapping[str, Any]
    """The buildx metadata file's content."""
    argv: tuple[str, ...] = ()
    cache: Mapping[str, Any] = field(default_factory=dict)
    """What happened to the cache: imported bytes/seconds, export committed/unchanged/failed,
    the generation, cache mounts restored/saved (``build.warm.Outcome``)."""
    cache_saved: bool = True
    """False when the local cache could not be written (full, read-only, forbidden)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "cache_saved": self.cache_saved,
            "digest": self.digest,
            "image_refs": list(self.image_refs),
            "cache_key": self.cache_key,
            "cache_backend": self.cache_backend,
            "cache_hits": self.cache_hits,
            "cache_steps": self.cache_steps,
            "durations": dict(self.durations),
            "cache": dict(self.cache),
        }
