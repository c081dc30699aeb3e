"""Split and merge a pipeline across native runners.

``pipeline run --platform P --push-by-digest`` builds one platform of every step and pushes
each image untagged (later steps build on that platform's digest); ``write_digests`` records
the digests in ``<digest-dir>/<os>-<arch>.json`` for the CI artifact. ``merge_steps`` then
assembles, for every step with ``push:`` targets, one index per repository from all the
platforms' digests, checks every step first (each must have all its platforms), and only
then writes the tags, then runs the ``promote:`` section.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.retry import settings_policy
from ci_toolkit.pipeline.model import Pipeline, Step, split_tag
from ci_toolkit.pipeline.plan import Options, select
from ci_toolkit.pipeline.run import OK, RunReport, StepOutcome, promote_all, publish
from ci_toolkit.registry.digests import DigestRecord, same_repository

if TYPE_CHECKING:
    from ci_toolkit.app import App
    from ci_toolkit.registry.merge import PreparedMerge


def check_options(options: Options) -> None:
    if options.push_by_digest and len(options.platforms) != 1:
        raise ToolkitError.bad_input("--push-by-digest builds one platform: give exactly one --platform")


def write_digests(report: RunReport, platform: str, directory: Path) -> Path:
    """The digest file of this platform's run: every image a step pushed by digest."""
    from ci_toolkit.registry import digests

    records = [
        DigestRecord(platform=platform, repository=ref.partition("@")[0], digest=ref.partition("@")[2], step=o.name)
        for o in report.outcomes
        for ref in o.refs
        if "@" in ref
    ]
    return digests.write(directory, platform, records)


def merge_steps(
    pipeline: Pipeline,
    options: Options,
    app: App,
    *,
    names: tuple[str, ...],
    records: Sequence[DigestRecord],
    artifacts: Path,
) -> RunReport:
    steps = [s for s in select(pipeline, names) if s.push_targets]
    if not steps:
        raise ToolkitError.bad_input(f"{pipeline.file}: no step has push: targets, so there is nothing to merge")
    started = time.monotonic()
    prepared = [(step, _prepare(step, options, app, records)) for step in steps]
    outcomes = [_write(step, merges, app, started) for step, merges in prepared]
    promoted = promote_all(pipeline, outcomes, dataclasses.replace(options, push=True), app)
    report = RunReport(outcomes=tuple(outcomes), artifacts=artifacts, promoted=tuple(promoted))
    publish(report, app)
    return report


def _prepare(step: Step, options: Options, app: App, records: Sequence[DigestRecord]) -> list[PreparedMerge]:
    from ci_toolkit.registry.merge import MergeRequest, prepare

    tags: dict[str, list[str]] = {}
    for target in step.push_targets:
        repo, tag = split_tag(target)
        tags.setdefault(repo, []).append(tag)
    merges = []
    for repo, repo_tags in tags.items():
        mine = tuple(r for r in records if r.step == step.name and same_repository(r.repository, repo))
        if not mine:
            raise ToolkitError.failed(f"step {step.name}: no digests for {repo} (did its platform jobs run?)")
        request = MergeRequest(
            repository=repo,
            records=mine,
            tags=tuple(repo_tags),
            platforms=options.platforms or step.platforms,
            retry=settings_policy(app.settings),
        )
        try:
            merges.append(prepare(request, settings=app.settings, env=app.env, reporter=app.reporter))
        except ToolkitError as exc:
            raise ToolkitError(f"step {step.name}: {exc.message}", exc.exit_code) from exc
    return merges


def _write(step: Step, merges: Sequence[PreparedMerge], app: App, started: float) -> StepOutcome:
    results = [m.write(dry_run=app.dry_run) for m in merges]
    first = results[0]
    for result in results:
        app.reporter.info(f"step {step.name}: merged {', '.join(result.platforms)} -> {', '.join(result.tags)}")
    return StepOutcome(
        name=step.name,
        status=OK,
        image=f"{first.repository}@{first.digest}",
        digest=first.digest,
        refs=tuple(f"{tag}@{r.digest}" for r in results for tag in r.tags),
        platforms=dict(first.platforms),
        seconds=time.monotonic() - started,
    )
