"""A validated pipeline -> one ``BuildRequest`` per build step, and the plan a user reads.

Cross-step bases: a step's image goes to the build registry under an immutable tag
(``<build-registry>/ci-toolkit-pipeline/<project>/<step>:<BUILD_TAG>``); a later step that
builds ``FROM`` that step's pushed tag gets it as a named context pinned by digest
(``--build-context NAME=docker-image://REF@DIGEST``), and ``{{ steps.x.image }}`` renders to
the same ``REF@DIGEST``. BuildKit then resolves the base per platform from the registry, so a
multi-platform step can build on another one for platforms the machine cannot run natively.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ci_toolkit.build import BuildRequest
from ci_toolkit.pipeline.model import Pipeline, Step, fail, inline_dockerfile, substitute

INTERMEDIATE_REPO = "ci-toolkit-pipeline"


@dataclass(frozen=True, kw_only=True)
class Options:
    build_registry: str
    build_tag: str
    project: str
    """Names the intermediate repositories and the default cache keys (project dir name)."""
    push: bool = False
    platforms: tuple[str, ...] = ()
    """Overrides every build step's platforms when given (``--platform``)."""
    label_prefix: str = "ci-toolkit"


@dataclass(frozen=True, kw_only=True)
class StepImage:
    """A build step's output once it ran (or a placeholder in a plan)."""

    ref: str
    digest: str

    @property
    def image(self) -> str:
        return f"{self.ref}@{self.digest}" if self.digest else self.ref

    def attr(self, name: str) -> str:
        return {"image": self.image, "digest": self.digest, "ref": self.ref}[name]


@dataclass(frozen=True, kw_only=True)
class PlannedStep:
    step: Step
    image_ref: str
    push_targets: tuple[str, ...]
    request: BuildRequest | None
    run: Mapping[str, Any] = field(default_factory=dict)


def project_slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("._-")
    return slug or "project"


def image_ref(options: Options, step: str) -> str:
    prefix = f"{options.build_registry.rstrip('/')}/" if options.build_registry else ""
    return f"{prefix}{INTERMEDIATE_REPO}/{options.project}/{step}:{options.build_tag}"


def placeholder(options: Options, step: str) -> StepImage:
    return StepImage(ref=image_ref(options, step), digest=f"<digest of step {step}>")


def check(pipeline: Pipeline, options: Options) -> None:
    """What needs the settings: a step whose image another step uses needs a build registry."""
    if options.build_registry:
        return
    for step in pipeline.steps:
        for edge in step.edges:
            if pipeline.step(edge.target).builds and (edge.context_name or edge.path[2] != "depends"):
                raise fail(
                    pipeline.file,
                    edge.path,
                    f"uses the image of step {edge.target!r}: set the build-registry setting "
                    "(e.g. build-registry: 127.0.0.1:5000) so it can be resolved per platform",
                )


def plan_step(pipeline: Pipeline, step: Step, options: Options, images: Mapping[str, StepImage]) -> PlannedStep:
    """``images`` holds the outputs of the steps ``step`` depends on."""

    def lookup(name: str, attr: str) -> str:
        return images[name].attr(attr)

    spec: Mapping[str, Any] = substitute(dict(step.spec), lookup)
    ref = image_ref(options, step.name)
    if "build" not in spec:
        return PlannedStep(step=step, image_ref="", push_targets=(), request=None, run=spec.get("run", {}))
    targets = step.push_targets if options.push else ()
    request = _request(pipeline, step, spec["build"], options, images, (ref, *targets))
    return PlannedStep(step=step, image_ref=ref, push_targets=targets, request=request, run=spec.get("run", {}))


def _request(
    pipeline: Pipeline,
    step: Step,
    build: Mapping[str, Any],
    options: Options,
    images: Mapping[str, StepImage],
    tags: tuple[str, ...],
) -> BuildRequest:
    cache: Mapping[str, Any] = build.get("cache", {})
    inline = inline_dockerfile(build)
    contexts = {e.context_name: f"docker-image://{images[e.target].image}" for e in step.edges if e.context_name}
    labels = {**_strings(build.get("labels", {})), f"{options.label_prefix}.step": step.name}
    return BuildRequest(
        context=str(build.get("path", ".")),
        dockerfile="" if inline is not None else str(build.get("dockerfile", "")),
        dockerfile_text=inline,
        target=str(build.get("target", "")),
        platforms=options.platforms or tuple(build.get("platforms", ())),
        tags=tags,
        push=bool(options.build_registry) or options.push,
        load=not options.build_registry and not options.push,
        build_args=_strings(build.get("build-args", {})),
        labels=labels,
        build_contexts=dict(sorted(contexts.items())),
        secrets=tuple(build.get("secrets", ())),
        cache_key=str(cache.get("key") or f"{options.project}-{step.name}"),
        cache_backend=str(cache.get("backend", "")),
        cache_ref=str(cache.get("ref", "")),
    )


def _strings(values: Mapping[str, Any]) -> dict[str, str]:
    return {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in values.items()}


def plan(pipeline: Pipeline, options: Options) -> list[PlannedStep]:
    """Every step in run order, with placeholders for digests not known before running."""
    check(pipeline, options)
    images = {s.name: placeholder(options, s.name) for s in pipeline.steps if s.builds}
    return [plan_step(pipeline, step, options, images) for step in pipeline.steps]


def select(pipeline: Pipeline, names: tuple[str, ...]) -> list[Step]:
    """The named steps and, transitively, the steps they depend on, in run order."""
    if not names:
        return list(pipeline.steps)
    known = {s.name for s in pipeline.steps}
    for name in names:
        if name not in known:
            raise fail(pipeline.file, ("steps",), f"--step {name}: no such step (steps: {', '.join(sorted(known))})")
    wanted: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo.extend(pipeline.step(name).depends)
    return [s for s in pipeline.steps if s.name in wanted]
