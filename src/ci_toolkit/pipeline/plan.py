"""A validated pipeline -> one ``BuildRequest`` per build step, and the plan a user reads.

Cross-step bases: a step's image goes to the build registry under an immutable tag
(``<build-registry>/ci-toolkit-pipeline/<project>/<step>:<BUILD_TAG>``); a later step that
builds ``FROM`` that step's pushed tag gets it as a named context pinned by digest
(``--build-context NAME=docker-image://REF@DIGEST``), and ``{{ steps.x.image }}`` renders to
the same ``REF@DIGEST``. BuildKit then resolves the base per platform from the registry, so a
multi-platform step can build on another one for platforms the machine cannot run natively.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ci_toolkit.build import BuildRequest
from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.refs import parse_mirror
from ci_toolkit.pipeline.model import Edge, Pipeline, Step, fail, inline_dockerfile, split_tag, substitute

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
    push_by_digest: bool = False
    """Build the one ``platforms`` entry and push it by digest, untagged (``pipeline merge`` tags)."""
    split_platforms: bool = False
    """Build a multi-platform step one platform at a time and merge the index in the build
    registry (the docker driver on the classic image store builds one platform at a time)."""
    local_bases: bool = False
    """Steps stay in the engine (containerd store, docker driver; see ``bases``): later steps
    name them by tag, since BuildKit looks a ``name@digest`` up in a registry, not the engine."""


@dataclass(frozen=True, kw_only=True)
class StepImage:
    """A build step's output once it ran (or a placeholder in a plan)."""

    ref: str
    digest: str
    pinned: bool = True
    """``image`` is ``ref@digest``; False for images kept in the engine (``Options.local_bases``)."""

    @property
    def image(self) -> str:
        return f"{self.ref}@{self.digest}" if self.digest and self.pinned else self.ref

    def attr(self, name: str) -> str:
        return {"image": self.image, "digest": self.digest, "ref": self.ref}[name]


@dataclass(frozen=True, kw_only=True)
class PlannedStep:
    step: Step
    image_ref: str
    push_targets: tuple[str, ...]
    request: BuildRequest | None
    run: Mapping[str, Any] = field(default_factory=dict)
    local_tags: tuple[str, ...] = ()
    """Tags the step's image gets in the local engine (``commit:``, and ``push:`` without
    --push), beyond those the build itself loads. With a ``run:`` they go to the run
    container's end state, as buildrunner does."""
    push_after_run: tuple[str, ...] = ()
    tags_from_run: bool = False
    """``local_tags`` name the committed run container, not the build's image."""
    """``push:`` targets of a step with a ``run:``: its committed container is pushed."""


def project_slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("._-")
    return slug or "project"


def image_ref(options: Options, step: str) -> str:
    prefix = f"{options.build_registry.rstrip('/')}/" if options.build_registry else ""
    return f"{prefix}{INTERMEDIATE_REPO}/{options.project}/{step}:{options.build_tag}"


def placeholder(options: Options, step: Step) -> StepImage:
    return StepImage(
        ref=step_ref(options, step), digest=f"<digest of step {step.name}>", pinned=not options.local_bases
    )


def step_ref(options: Options, step: Step) -> str:
    """Where later steps find this step's image: the build registry; with no build registry,
    its first push target when it pushes (untagged with push-by-digest), else a local name."""
    if not options.build_registry and step.push_targets:
        if options.push_by_digest:
            return split_tag(step.push_targets[0])[0]
        if options.push:
            return step.push_targets[0]
    return image_ref(options, step.name)


def digest_repositories(options: Options, step: Step) -> tuple[str, ...]:
    """The repositories a step pushes by digest to: the build registry's and its push: ones."""
    repos = [split_tag(t)[0] for t in step.push_targets]
    if options.build_registry:
        repos.insert(0, image_ref(options, step.name).rpartition(":")[0])
    return tuple(dict.fromkeys(repos))


def uses_step_images(pipeline: Pipeline, options: Options) -> bool:
    """Whether a step builds on another step's image in a way the run must hand over."""
    return bool(_image_edges(pipeline, options))


def _image_edges(pipeline: Pipeline, options: Options) -> list[tuple[Step, Edge]]:
    found = []
    for step in pipeline.steps:
        for edge in step.edges:
            base = pipeline.step(edge.target)
            if options.push_by_digest and base.push_targets:
                continue  # pushed by digest to its own repository: found there
            if base.builds and (edge.context_name or edge.path[2] != "depends"):
                found.append((step, edge))
    return found


def check(pipeline: Pipeline, options: Options) -> None:
    """Cross-step bases need a way over: the build registry, or the engine (``bases``)."""
    if options.build_registry:
        try:
            parse_mirror(options.build_registry)
        except ToolkitError as exc:
            raise ToolkitError.bad_input(f"setting build-registry: {exc.message}") from exc
        return
    if options.local_bases:
        return
    for _, edge in _image_edges(pipeline, options)[:1]:
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
    ref = step_ref(options, step)
    run = spec.get("run", {})
    local = (*step.commit_targets, *(() if options.push else step.push_targets))
    if run and (pipeline.flavor == "buildrunner" or "build" not in spec):
        # buildrunner commits and pushes the run container's end state, not the build's image.
        return _run_commits(pipeline, step, spec, options, images, ref, local)
    targets = step.push_targets if options.push or options.push_by_digest else ()
    pushed = bool(options.build_registry or targets)
    tags = tuple(dict.fromkeys((ref, *targets, *(() if pushed else local))))
    request = _request(pipeline, step, spec["build"], options, images, tags, pushed)
    if options.push_by_digest:
        request = _by_digest(request, options, step)
    return PlannedStep(
        step=step,
        image_ref=ref,
        push_targets=targets,
        request=request,
        run=run,
        local_tags=tuple(dict.fromkeys(local)) if pushed else (),
    )


def _run_commits(
    pipeline: Pipeline,
    step: Step,
    spec: Mapping[str, Any],
    options: Options,
    images: Mapping[str, StepImage],
    ref: str,
    local: tuple[str, ...],
) -> PlannedStep:
    request = None
    if "build" in spec:
        request = _request(pipeline, step, spec["build"], options, images, (ref,), bool(options.build_registry))
    return PlannedStep(
        step=step,
        image_ref=ref if request else "",
        push_targets=(),
        request=request,
        run=spec["run"],
        local_tags=tuple(dict.fromkeys(local)),
        push_after_run=step.push_targets if options.push else (),
        tags_from_run=True,
    )


def _by_digest(request: BuildRequest, options: Options, step: Step) -> BuildRequest:
    """One platform, pushed untagged to each repository, cached under a key of its own (the
    per-platform jobs of a CI matrix must not overwrite each other's cache)."""
    repos = digest_repositories(options, step)
    key = request.cache_key
    if key == f"{options.project}-{step.name}":
        key += "-" + "-".join(p.replace("/", "-") for p in options.platforms)
    if not repos:
        # Nowhere to push: the image stays in the engine, where a later step of this one
        # platform finds it.
        return dataclasses.replace(request, push=False, load=True, cache_key=key)
    return dataclasses.replace(request, tags=repos, push=False, load=False, push_by_digest=True, cache_key=key)


def _request(
    pipeline: Pipeline,
    step: Step,
    build: Mapping[str, Any],
    options: Options,
    images: Mapping[str, StepImage],
    tags: tuple[str, ...],
    pushed: bool | None = None,
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
        push=pushed if pushed is not None else bool(options.build_registry) or options.push,
        load=not pushed if pushed is not None else not options.build_registry and not options.push,
        build_args=_strings(build.get("build-args", {})),
        labels=labels,
        build_contexts=dict(sorted(contexts.items())),
        secrets=tuple(build.get("secrets", ())),
        cache_key=str(cache.get("key") or f"{options.project}-{step.name}"),
        cache_backend=str(cache.get("backend", "")),
        cache_ref=str(cache.get("ref", "")),
        builder=str(build.get("builder", "")),
        no_cache=bool(build.get("no-cache", False)),
        pull=bool(build.get("pull", False)),
        cache_from=tuple(str(c) for c in build.get("cache-from", ())),
    )


def _strings(values: Mapping[str, Any]) -> dict[str, str]:
    return {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in values.items()}


def plan(pipeline: Pipeline, options: Options) -> list[PlannedStep]:
    """Every step in run order, with placeholders for digests not known before running."""
    check(pipeline, options)
    images = {s.name: placeholder(options, s) for s in pipeline.steps if s.builds}
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
