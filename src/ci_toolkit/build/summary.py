"""How a build reads at the end of a job, like build-push-action's summary: per image its
tags, the digest and size of each platform, the cache's share (steps cached of total, bytes
imported), the duration and the CI run's link. The same facts go to the log's final block
(every CI) and to the step summary (GitHub).

Public entries: ``log_block(view)`` and ``markdown(view)``, ``view`` a ``BuildView``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

TYPE_CHECKING = False  # not typing's: importing typing costs every command's start-up (CONTRIBUTING)
if TYPE_CHECKING:
    from typing import Any

    from ci_toolkit.registry.describe import PlatformImage  # only a pushed image has them


@dataclass(frozen=True, kw_only=True)
class BuildView:
    """What the build's log block and step summary show."""

    refs: Sequence[str]
    digest: str
    platforms: Sequence[PlatformImage] = ()
    cache_backend: str = ""
    cache_key: str = ""
    cache_hits: int = 0
    cache_steps: int = 0
    cache: Mapping[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    build_seconds: float = 0.0
    run_url: str = ""


def size_text(size: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def cache_text(view: BuildView) -> str:
    text = f"{view.cache_hits}/{view.cache_steps} steps cached"
    imported = int(str(view.cache.get("imported_bytes") or 0))
    if imported:
        text += f", {size_text(imported)} imported"
    if view.cache.get("export") == "committed":
        text += ", exported"
    return text


def log_block(view: BuildView) -> str:
    refs = ", ".join(view.refs) or "(untagged)"
    lines = [f"built {refs}", f"  digest: {view.digest or '-'}"]
    for row in view.platforms:
        lines.append(f"  {row.platform}: {row.digest} ({size_text(row.size)})")
    lines.append(f"  cache: {view.cache_backend} key {view.cache_key!r}, {cache_text(view)}")
    lines.append(f"  time: {view.seconds:.1f}s (buildx {view.build_seconds:.1f}s)")
    if view.run_url:
        lines.append(f"  run: {view.run_url}")
    return "\n".join(lines)


def markdown(view: BuildView) -> str:
    tags = "<br>".join(f"`{r}`" for r in view.refs) or "(untagged)"
    rows = [(p.platform, p.digest, p.size) for p in view.platforms] or [("-", view.digest, 0)]
    lines = [
        "### ci-toolkit build",
        "",
        "| image | platform | digest | size | cache | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for number, (platform, digest, size_bytes) in enumerate(rows):
        first = number == 0
        size = size_text(size_bytes) if size_bytes else "-"
        lines.append(
            f"| {tags if first else ''} | {platform} | `{digest or '-'}` | {size} "
            f"| {cache_text(view) if first else ''} | {f'{view.seconds:.1f}' if first else ''} |"
        )
    if view.platforms and view.digest not in {r.digest for r in view.platforms}:
        lines += ["", f"Index digest: `{view.digest}`"]
    lines += ["", f"Cache: {view.cache_backend} key `{view.cache_key}`."]
    if view.run_url:
        lines.append(f"Run: {view.run_url}")
    return "\n".join(lines)
