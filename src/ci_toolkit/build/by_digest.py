"""Push by digest: one platform's image goes to its repositories with no tag, for a later
``merge`` to assemble the index and write the tags once every platform is there.

buildx's own ``push-by-digest=true`` output is refused on the ``docker`` driver (the default
builder of every engine, and the only one on a machine without the BuildKit image), so the
build exports an OCI layout (``type=oci,tar=false``, which every driver supports) and the
registry client uploads it by digest: the same bytes, whatever the builder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ci_toolkit.build.request import BuildHost
from ci_toolkit.core import refs
from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.registry.digests import DigestRecord

TYPE_CHECKING = False  # not typing's: importing typing costs every command's start-up (CONTRIBUTING)
if TYPE_CHECKING:
    from typing import Any


def check(tags: Sequence[str], platforms: Sequence[str], *, push: bool, load: bool) -> None:
    if push or load:
        raise ToolkitError.bad_input("--push-by-digest replaces --push and --load: give only one of them")
    if len(platforms) != 1:
        raise ToolkitError.bad_input("--push-by-digest builds one platform: give exactly one --platform")
    if not tags:
        raise ToolkitError.bad_input("--push-by-digest needs --tag REPOSITORY (where the image is pushed)")
    for tag in tags:
        if refs.has_explicit_version(tag):
            raise ToolkitError.bad_input(
                f"--push-by-digest writes no tag: give --tag {tag.rpartition(':')[0] or tag} "
                "without :tag (merge writes the tags)"
            )


def output_args(layout: Path) -> tuple[str, ...]:
    return ("--output", f"type=oci,dest={layout},tar=false")


def push(
    layout: Path,
    metadata: Mapping[str, Any],
    repositories: Sequence[str],
    *,
    host: BuildHost,
) -> tuple[str, ...]:
    """Upload the layout buildx wrote to each repository; returns ``repo@digest`` for each."""
    from ci_toolkit.registry.client import connect
    from ci_toolkit.registry.layout import push_layout

    descriptor = metadata.get("containerimage.descriptor") or {}
    digest = str(descriptor.get("digest") or metadata.get("containerimage.digest", ""))
    if not digest:
        raise ToolkitError.failed("buildx reported no image digest for the OCI layout it wrote")
    pushed: list[str] = []
    for repository in repositories:
        parsed = refs.parse_reference(repository)
        client = connect(parsed.domain, settings=host.settings, env=host.env, reporter=host.reporter)
        uploaded = push_layout(client, parsed.path, layout, {**descriptor, "digest": digest})
        host.reporter.info(f"pushed {repository}@{digest} by digest ({uploaded} blob(s) uploaded)")
        pushed.append(f"{repository}@{digest}")
    return tuple(pushed)


def records(
    platform: str, image_refs: Sequence[str], metadata: Mapping[str, Any], step: str = ""
) -> list[DigestRecord]:
    """The digest-file records of one build pushed by digest."""
    descriptor = dict(metadata.get("containerimage.descriptor") or {})
    descriptor.pop("digest", None)
    out = []
    for ref in image_refs:
        repository, _, digest = ref.partition("@")
        out.append(
            DigestRecord(platform=platform, repository=repository, digest=digest, step=step, descriptor=descriptor)
        )
    return out
