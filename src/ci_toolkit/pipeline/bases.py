"""Cross-step bases with no settings: how a step's image reaches the steps built on it.

Chosen once per run, in this order:

1. ``build-registry`` is set: the explicit choice wins. Steps push there under an immutable
   tag and later steps get the image pinned by digest; BuildKit resolves it per platform.
2. No step builds on another's image: nothing is needed.
3. The engine uses the containerd image store and the builder is the ``docker`` driver: steps
   ``--load`` into the engine (a multi-platform image keeps every platform there) and later
   steps build ``FROM`` them locally, for every platform. Nothing leaves the machine.
4. Otherwise (the classic image store, or a builder in its own container): a temporary
   registry on 127.0.0.1 for the run (``containers.registry``), used as the build registry,
   removed at the end (``sweep`` finds it if the job is killed).

``pipeline plan`` prints the path and the reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ci_toolkit.core import proc
from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.report import Reporter
from ci_toolkit.pipeline.model import Pipeline
from ci_toolkit.pipeline.plan import Options, uses_step_images

if TYPE_CHECKING:
    from ci_toolkit.app import App

BUILD_REGISTRY = "build-registry"
NOT_NEEDED = "not needed"
ENGINE = "engine"
TEMPORARY = "temporary registry"
# A placeholder port in a plan: the real one is picked when the registry starts (commands show <port>).
TEMPORARY_PLACEHOLDER = "127.0.0.1:65535"


@dataclass(frozen=True, kw_only=True)
class BasePath:
    kind: str
    reason: str
    per_platform: bool = False
    """The builder builds one platform per invocation: steps are split and merged."""

    def as_dict(self) -> dict[str, str]:
        return {"path": self.kind, "reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class Engine:
    containerd_store: bool
    builder: str
    driver: str


def choose(pipeline: Pipeline, options: Options, app: App) -> BasePath:
    if options.build_registry:
        return BasePath(
            kind=BUILD_REGISTRY,
            reason=f"the build-registry setting ({options.build_registry}): steps push there, "
            "later steps resolve their bases from it by digest, per platform",
        )
    if not uses_step_images(pipeline, options):
        return BasePath(kind=NOT_NEEDED, reason="no step builds on another step's image")
    wanted = app.settings.cross_step_bases
    if wanted == "temporary-registry":
        return BasePath(kind=TEMPORARY, reason="the cross-step-bases setting: a registry on 127.0.0.1 for the run")
    engine = probe(app)
    if wanted == "engine" and not (engine.containerd_store and engine.driver == "docker"):
        raise ToolkitError.missing(
            "cross-step-bases is engine, but that needs the containerd image store and the docker driver "
            f"(builder {engine.builder} is the {engine.driver} driver, containerd store: {engine.containerd_store})"
        )
    if engine.containerd_store and engine.driver == "docker":
        return BasePath(
            kind=ENGINE,
            reason=f"no build-registry; the engine uses the containerd image store and builder {engine.builder} "
            "is the docker driver: steps are kept in the engine and later steps build FROM them there, "
            "for every platform",
        )
    why = (
        "the engine uses the classic image store"
        if not engine.containerd_store
        else f"builder {engine.builder} is the {engine.driver} driver (it cannot see the engine's images)"
    )
    one_at_a_time = engine.driver == "docker" and not engine.containerd_store
    how = (
        "; the docker driver on it builds one platform at a time, merged into one index there" if one_at_a_time else ""
    )
    return BasePath(
        kind=TEMPORARY,
        reason=f"no build-registry, and {why}: a registry on 127.0.0.1 is started for the run and removed after it"
        + how,
        per_platform=one_at_a_time,
    )


def probe(app: App) -> Engine:
    """The engine's image store and the builder's driver: two read-only commands, run side
    by side (``buildx inspect`` alone takes a few hundred milliseconds)."""
    from concurrent.futures import ThreadPoolExecutor

    builder = app.settings.builder
    commands = (
        ["docker", "info", "--format", "{{json .DriverStatus}}"],
        ["docker", "buildx", "inspect", *([builder] if builder else [])],
    )
    # Their stderr is kept for the one error line, not streamed into the log.
    quiet = Reporter(quiet=True, stream=io.StringIO(), stdout=io.StringIO(), masker=app.reporter.masker)
    with ThreadPoolExecutor(max_workers=2) as pool:
        info, inspect = pool.map(
            lambda argv: proc.run(argv, quiet, capture=True, env=app.env, echo=False, check=False, what=argv[1]),
            commands,
        )
    if info.returncode != 0:
        raise ToolkitError.missing(f"cannot reach the Docker engine: {info.stderr_tail.strip()[-200:]}")
    if inspect.returncode != 0:
        raise ToolkitError.missing(f"builder {builder or '(current)'} not found: {inspect.stderr_tail.strip()[-200:]}")
    try:
        status = json.loads(info.stdout or "null") or []
    except ValueError:
        status = []
    containerd = any("io.containerd.snapshotter" in str(value) for pair in status for value in pair)
    fields = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition(":") for line in inspect.stdout.splitlines())
        if key and not key.startswith(" ")
    )
    return Engine(containerd_store=containerd, builder=fields.get("Name", builder), driver=fields.get("Driver", ""))


def for_plan(path: BasePath, options: Options) -> Options:
    """The options a plan shows: the temporary registry's address is known only when it runs."""
    if path.kind == ENGINE:
        return dataclasses.replace(options, local_bases=True)
    if path.kind == TEMPORARY:
        return dataclasses.replace(options, build_registry=TEMPORARY_PLACEHOLDER, split_platforms=path.per_platform)
    return options


@contextlib.contextmanager
def prepared(path: BasePath, options: Options, app: App) -> Iterator[Options]:
    """The options a run uses; a temporary registry lives as long as the ``with`` block."""
    if path.kind != TEMPORARY:
        yield for_plan(path, options)
        return
    from ci_toolkit.containers.registry import temporary_registry

    with temporary_registry(app.settings, app.ci, app.reporter) as address:
        yield dataclasses.replace(options, build_registry=address, split_platforms=path.per_platform)
