"""One step, one platform at a time, merged into one index in the build registry.

The ``docker`` driver on the classic image store builds one platform per invocation (buildx:
"multi-platform build is not supported for the docker driver") and exports no build cache.
With a build registry (the run's temporary one, see ``bases``), a multi-platform step is still
possible: each platform is pushed under a tag of its own, then ``registry.merge`` assembles the
index under the step's tag, so later steps resolve their base per platform as usual.
"""

from __future__ import annotations

import dataclasses

from ci_toolkit.build import BuildHost, BuildRequest, BuildResult, run_build
from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.retry import settings_policy
from ci_toolkit.pipeline.model import split_tag


def build(request: BuildRequest, host: BuildHost, ref: str) -> BuildResult:
    """Build ``request`` once per platform, push each to ``<ref>-<os>-<arch>``, then merge
    them into ``ref`` (the step's image in the build registry). The result is the last
    platform's, with the index's digest."""
    from ci_toolkit.registry.merge import MergeRequest, merge

    others = [t for t in request.tags if t != ref]
    if others:
        raise ToolkitError.missing(
            f"cannot push {others[0]} for {', '.join(request.platforms)}: this builder builds one platform at a "
            "time; use the containerd image store, or a builder that builds several (ci-toolkit setup-builder)"
        )
    repo, tag = split_tag(ref)
    digests: list[str] = []
    result: BuildResult | None = None
    for platform in request.platforms:
        slug = platform.replace("/", "-")
        one = dataclasses.replace(
            request,
            platforms=(platform,),
            tags=(f"{repo}:{tag}-{slug}",),
            push=True,
            load=False,
            cache_key=f"{request.cache_key}-{slug}" if request.cache_key else "",
            cache_backend="none",
        )
        result = run_build(one, host)
        digests.append(result.digest)
    assert result is not None
    if host.dry_run:
        return result
    merged = merge(
        MergeRequest(
            repository=repo,
            digests=tuple(digests),
            tags=(tag,),
            platforms=request.platforms,
            retry=settings_policy(host.settings),
        ),
        settings=host.settings,
        env=host.env,
        reporter=host.reporter,
    )
    host.reporter.info(f"merged {', '.join(merged.platforms)} into {ref}@{merged.digest}")
    return dataclasses.replace(result, digest=merged.digest, image_refs=(f"{ref}@{merged.digest}",))
