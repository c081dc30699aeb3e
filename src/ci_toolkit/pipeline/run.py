"""Run a planned pipeline: one build per step through ``build.run_build``, in order, each
step seeing the digests of the steps before it; then the results go to ``artifacts.json``,
the CI outputs and the step summary.

A failed step stops the steps that depend on it; without ``keep_going`` it stops every step
after it. Bad input or a missing tool (exit 2 / 3) stops the run at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_toolkit.core import proc, retry
from ci_toolkit.core.errors import EXIT_FAILED, ToolkitError
from ci_toolkit.core.files import write_atomic
from ci_toolkit.pipeline.host import StepHost
from ci_toolkit.pipeline.model import Pipeline, Step
from ci_toolkit.pipeline.plan import Options, PlannedStep, StepImage, check, plan_step, select

if TYPE_CHECKING:
    from ci_toolkit.app import App
    from ci_toolkit.build import BuildResult

OK, FAILED, SKIPPED, NOT_RUN = "ok", "failed", "skipped", "not run"


@dataclass(kw_only=True)
class StepOutcome:
    name: str
    status: str
    image: str = ""
    digest: str = ""
    refs: tuple[str, ...] = ()
    platforms: dict[str, str] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    reason: str = ""
    artifacts: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": self.status}
        if self.image:
            data.update(image=self.image, digest=self.digest, refs=list(self.refs), platforms=self.platforms)
        if self.cache:
            data["cache"] = self.cache
        if self.artifacts:
            data["artifacts"] = self.artifacts
        data["duration_seconds"] = round(self.seconds, 3)
        if self.reason:
            data["reason"] = self.reason
        return data


@dataclass(frozen=True, kw_only=True)
class RunReport:
    outcomes: tuple[StepOutcome, ...]
    artifacts: Path
    promoted: tuple[Any, ...] = ()

    @property
    def failed(self) -> bool:
        return any(o.status in (FAILED, SKIPPED) for o in self.outcomes)


def run(
    pipeline: Pipeline,
    options: Options,
    app: App,
    *,
    names: tuple[str, ...] = (),
    keep_going: bool = False,
    artifacts: Path,
) -> RunReport:
    check(pipeline, options)
    steps = select(pipeline, names)
    outcomes: dict[str, StepOutcome] = {}
    images: dict[str, StepImage] = {}
    promoted: list[Any] = []
    try:
        for step in steps:
            outcomes[step.name] = _next(pipeline, step, options, app, outcomes, images, keep_going, artifacts.parent)
        if all(o.status == OK for o in outcomes.values()):
            promoted = promote_all(pipeline, list(outcomes.values()), options, app)
    except BaseException:
        # The original error is the one to report: a failure to publish only gets a warning.
        try:
            publish(_report(steps, outcomes, artifacts, promoted), app)
        except (ToolkitError, OSError) as exc:
            app.reporter.warning(f"results not published: {exc}")
        raise
    report = _report(steps, outcomes, artifacts, promoted)
    publish(report, app)
    return report


def _report(
    steps: Sequence[Step], outcomes: Mapping[str, StepOutcome], artifacts: Path, promoted: Sequence[Any]
) -> RunReport:
    done = tuple(outcomes.get(s.name) or StepOutcome(name=s.name, status=NOT_RUN) for s in steps)
    return RunReport(outcomes=done, artifacts=artifacts, promoted=tuple(promoted))


def _next(
    pipeline: Pipeline,
    step: Step,
    options: Options,
    app: App,
    outcomes: Mapping[str, StepOutcome],
    images: dict[str, StepImage],
    keep_going: bool,
    results: Path,
) -> StepOutcome:
    blocked = [d for d in step.depends if d in outcomes and outcomes[d].status != OK]
    if blocked:
        app.reporter.info(f"step {step.name}: skipped, {blocked[0]} did not succeed")
        return StepOutcome(name=step.name, status=SKIPPED, reason=f"depends on {blocked[0]}, which did not succeed")
    if not keep_going and any(o.status != OK for o in outcomes.values()):
        return StepOutcome(name=step.name, status=NOT_RUN, reason="an earlier step failed")
    started = time.monotonic()
    with app.reporter.group(f"step {step.name}"):
        try:
            outcome = _run_step(pipeline, step, options, app, images, results)
        except ToolkitError as exc:
            if exc.exit_code != EXIT_FAILED:
                raise
            app.reporter.error(f"step {step.name} failed: {exc.message}")
            outcome = StepOutcome(name=step.name, status=FAILED, reason=exc.message)
    outcome.seconds = time.monotonic() - started
    return outcome


def _run_step(
    pipeline: Pipeline, step: Step, options: Options, app: App, images: dict[str, StepImage], results: Path
) -> StepOutcome:
    from ci_toolkit.pipeline import steprun

    planned = plan_step(pipeline, step, options, images)
    outcome = StepOutcome(name=step.name, status=OK)
    with contextlib.ExitStack() as stack:
        if planned.request is not None:
            _build_step(pipeline, planned, options, app, images, outcome, stack)
        if planned.run:
            ctx = steprun.RunContext(pipeline=pipeline, options=options, app=app, results_dir=results)
            loaded = planned.request is not None and planned.request.load
            built = planned.image_ref if loaded else outcome.image
            outcome.artifacts = steprun.run_step(ctx, planned, built, stack)
    return outcome


def _build_step(
    pipeline: Pipeline,
    planned: PlannedStep,
    options: Options,
    app: App,
    images: dict[str, StepImage],
    outcome: StepOutcome,
    stack: contextlib.ExitStack,
) -> None:
    from ci_toolkit.build import run_build
    from ci_toolkit.pipeline import images as step_images
    from ci_toolkit.pipeline import per_platform

    step, build = planned.step, planned.step.spec["build"]
    assert planned.request is not None
    if "import" in build:
        ref = step_images.import_image(pipeline.project_dir / str(build["import"]), planned.image_ref, app)
        if options.build_registry:
            step_images.push((ref,), app)
        images[step.name] = StepImage(ref=ref, digest="", pinned=False)
        outcome.image = ref
        if not planned.tags_from_run:
            loaded = [t for t in planned.request.tags if t != ref and planned.request.load]
            step_images.tag_locally(ref, (*loaded, *planned.local_tags), app)
        return
    request = planned.request
    if "inject" in build:
        context = stack.enter_context(step_images.injected_context(build, pipeline.project_dir))
        request = dataclasses.replace(request, context=context)
    host = StepHost(app, pipeline.project_dir)
    if options.split_platforms and len(request.platforms) > 1:
        result = per_platform.build(request, host, planned.image_ref)
    else:
        result = run_build(request, host)
    digest = result.digest or (f"<digest of step {step.name}>" if app.dry_run else "")
    image = StepImage(ref=planned.image_ref, digest=digest, pinned=not options.local_bases)
    images[step.name] = image
    outcome.image = image.image
    outcome.digest = result.digest
    outcome.refs = tuple(f"{t}@{result.digest}" for t in planned.request.tags) if result.digest else ()
    outcome.cache = _cache(result)
    if planned.request.push and result.digest:
        outcome.platforms = platform_digests(image.image, app)
    elif planned.request.push_by_digest:
        outcome.refs = result.image_refs
        outcome.platforms = dict.fromkeys(planned.request.platforms, result.digest)
    app.reporter.info(f"step {step.name}: {image.image} ({_cache_text(outcome.cache)})")
    if not planned.tags_from_run:
        step_images.tag_locally(image.image, planned.local_tags, app)


def _cache(result: BuildResult) -> dict[str, Any]:
    return {
        "key": result.cache_key,
        "backend": result.cache_backend,
        "hits": result.cache_hits,
        "steps": result.cache_steps,
        "imported_bytes": int(str(result.cache.get("imported_bytes") or 0)),
    }


def _cache_text(cache: Mapping[str, Any]) -> str:
    return f"cache {cache.get('backend')}: {cache.get('hits')}/{cache.get('steps')} steps cached"


def platform_digests(image: str, app: App) -> dict[str, str]:
    """``os/arch[/variant]`` -> manifest digest, read from the pushed index (no layer pulled)."""
    if app.dry_run:
        return {}
    done = retry.with_retries(
        lambda: proc.run(
            ["docker", "buildx", "imagetools", "inspect", "--raw", image],
            app.reporter,
            capture=True,
            env=app.env,
            what="reading the pushed index",
        ),
        policy=retry.settings_policy(app.settings),
        reporter=app.reporter,
        what=f"reading the index of {image}",
        classify=lambda exc: retry.transient_fault(exc.message),
    )
    try:
        index = json.loads(done.stdout)
    except ValueError:
        return {}
    result: dict[str, str] = {}
    for manifest in index.get("manifests", []):
        platform = manifest.get("platform", {})
        if platform.get("os") in (None, "unknown"):
            continue  # attestation manifests
        name = "/".join(p for p in (platform.get("os"), platform.get("architecture"), platform.get("variant")) if p)
        result[name] = str(manifest.get("digest", ""))
    return result


def promote_all(pipeline: Pipeline, outcomes: Sequence[StepOutcome], options: Options, app: App) -> list[Any]:
    """The ``promote:`` section, once every step succeeded: each floating tag of each pushed
    repository of the step moves to this build's digest (never backwards)."""
    from ci_toolkit.pipeline.model import split_tag
    from ci_toolkit.registry.promote import PromoteRequest, promote

    if not pipeline.promote:
        return []
    if not options.push:
        app.reporter.info("promote: skipped (nothing was pushed; run with --push)")
        return []
    by_name = {o.name: o for o in outcomes}
    results: list[Any] = []
    for name, spec in pipeline.promote.items():
        config = spec if isinstance(spec, dict) else {"tags": spec}
        outcome = by_name.get(name)
        if outcome is None or not outcome.digest:
            continue
        repos = dict.fromkeys(split_tag(t)[0] for t in pipeline.step(name).push_targets)
        for repo in repos:
            request = PromoteRequest(
                source=f"{repo}@{outcome.digest}",
                tags=tuple(config["tags"]),
                order_by=str(config.get("order-by", "auto")),
                force=bool(config.get("force", False)),
                strict=bool(config.get("strict", False)),
                dry_run=app.dry_run,
                retry=retry.settings_policy(app.settings),
            )
            result = promote(request, settings=app.settings, env=app.env, reporter=app.reporter)
            for tag in result.outcomes:
                app.reporter.info(f"promote {name}: {tag.detail}")
            if result.exit_code:
                raise ToolkitError.failed(f"promote {name}: a tag was not moved ({result.skipped[0].detail})")
            results.append({"step": name, **result.as_dict()})
    return results


def publish(report: RunReport, app: App) -> None:
    """artifacts.json, CI outputs (``<step>-image`` / ``<step>-digest``) and the summary."""
    data: dict[str, Any] = {"steps": {o.name: o.as_dict() for o in report.outcomes}}
    if report.promoted:
        data["promote"] = list(report.promoted)
    if not app.dry_run:
        write_atomic(report.artifacts, json.dumps(data, indent=2) + "\n", parents=True)
    outputs: dict[str, str] = {"artifacts": str(report.artifacts)}
    for o in report.outcomes:
        if o.image:
            outputs[f"{o.name}-image"] = o.image
            outputs[f"{o.name}-digest"] = o.digest
    app.reporter.outputs(outputs)
    app.reporter.summary(summary_markdown(report, app.ci.run_url))


def summary_markdown(report: RunReport, run_url: str = "") -> str:
    """One row per step: its image, the digest of each platform, cache use and duration."""
    from ci_toolkit.build.summary import size_text

    lines = [
        "### ci-toolkit pipeline",
        "",
        "| step | status | image | platforms | cache | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for o in report.outcomes:
        platforms = "<br>".join(f"{p} `{d[:19]}`" if d else p for p, d in sorted(o.platforms.items())) or "-"
        cache = f"{o.cache.get('hits')}/{o.cache.get('steps')} cached" if o.cache else "-"
        imported = int(str(o.cache.get("imported_bytes") or 0)) if o.cache else 0
        cache += f", {size_text(imported)} imported" if imported else ""
        image = f"`{o.image}`" if o.image else (o.reason or "-")
        lines.append(f"| {o.name} | {o.status} | {image} | {platforms} | {cache} | {o.seconds:.1f} |")
    if run_url:
        lines += ["", f"Run: {run_url}"]
    return "\n".join(lines)
