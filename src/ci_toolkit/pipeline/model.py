"""ci-toolkit.yaml ``steps:`` -> a validated, ordered pipeline.

``load`` checks the rendered project sections against the shipped JSON Schema, then what a
schema cannot say (dependencies, cycles, step references, files, push conflicts), and returns
the steps in the order they run. Every error is one ``ToolkitError.bad_input`` line naming the
file, the step and the key. Planning is in ``pipeline_plan``, execution in ``pipeline_run``.

Step references: ``{{ steps.<name>.image }}`` is rendered by ``config`` as a marker
(``config.STEP_REF``); ``substitute`` replaces the markers once the named step has run.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci_toolkit.core.config import STEP_REF
from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.refs import parse_reference
from ci_toolkit.pipeline.schema import format_path, validate
from ci_toolkit.registry.digests import platform_key

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True, kw_only=True)
class Edge:
    """Step ``target`` must run first; ``path`` is the key that says so (for error lines)."""

    target: str
    path: KeyPath
    context_name: str = ""
    """Set when a Dockerfile names the target's pushed tag: the ``--build-context`` name."""


@dataclass(frozen=True, kw_only=True)
class Step:
    name: str
    spec: Mapping[str, Any]
    """The step as written (after rendering), step-reference markers still in place."""
    push_targets: tuple[str, ...] = ()
    edges: tuple[Edge, ...] = ()
    commit_targets: tuple[str, ...] = ()
    """``commit:``: tags the step's image gets in the local engine only."""

    @property
    def depends(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.target for e in self.edges))

    @property
    def builds(self) -> bool:
        return "build" in self.spec

    @property
    def platforms(self) -> tuple[str, ...]:
        return tuple(self.spec.get("build", {}).get("platforms", ()))


@dataclass(frozen=True, kw_only=True)
class Pipeline:
    file: str
    project_dir: Path
    steps: tuple[Step, ...]
    """In run order: every step after the steps it depends on, else in file order."""
    promote: Mapping[str, Any] = field(default_factory=dict)
    local_files: Mapping[str, str] = field(default_factory=dict)
    """``files:`` aliases from buildrunner's global ``local-files`` (a path or the content)."""
    flavor: str = "ci-toolkit"
    """``buildrunner``: a step's commit/push take its run container's end state."""
    results_file: str = "artifacts.json"
    """The default results file; run.artifacts are collected beside it, one folder per step."""

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)


def fail(file: str, path: KeyPath, message: str) -> ToolkitError:
    where = format_path(path)
    return ToolkitError.bad_input(f"{file}: {where}: {message}" if where else f"{file}: {message}")


def load(
    project: Mapping[str, Any], *, file: str, project_dir: Path, build_tag: str, allow_outside: bool = False
) -> Pipeline:
    """Validate and order. ``build_tag`` is the immutable tag every push gets by default.
    Host paths must stay inside ``project_dir`` unless ``allow_outside`` (see ``confine``)."""
    document = {k: v for k, v in project.items() if k in ("steps", "promote")}
    errors = validate(document)
    if errors:
        raise fail(file, errors[0].path, errors[0].message)
    raw_steps: Mapping[str, Mapping[str, Any]] = document["steps"]
    if not allow_outside:
        for name, spec in raw_steps.items():
            confine(spec, ("steps", name), file, project_dir)
    steps = [_step(name, spec, file, project_dir, build_tag) for name, spec in raw_steps.items()]
    _check_push_conflicts(steps, file)
    steps = [_with_edges(step, steps, file, project_dir) for step in steps]
    ordered = _order(steps, file)
    _check_promote(document.get("promote", {}), steps, file)
    return Pipeline(file=file, project_dir=project_dir, steps=tuple(ordered), promote=document.get("promote", {}))


def _step(name: str, spec: Mapping[str, Any], file: str, project_dir: Path, build_tag: str) -> Step:
    base: KeyPath = ("steps", name)
    for key in ("push", "commit"):
        if key in spec and "build" not in spec and "run" not in spec:
            raise fail(file, (*base, key), f"{key} needs a 'build' or a 'run' in the same step")
    if "build" not in spec and "run" not in spec:
        raise fail(file, base, "a step needs 'build' or 'run'")
    if "build" in spec:
        _check_build(spec["build"], (*base, "build"), file, project_dir)
    if "run" in spec and "image" not in spec["run"] and "build" not in spec:
        raise fail(file, (*base, "run", "image"), "a run needs an 'image' (or a build in the same step)")
    targets = push_targets(spec["push"], build_tag, file, (*base, "push")) if "push" in spec else ()
    local = push_targets(spec["commit"], build_tag, file, (*base, "commit")) if "commit" in spec else ()
    return Step(name=name, spec=spec, push_targets=targets, commit_targets=local)


def _check_build(build: Mapping[str, Any], path: KeyPath, file: str, project_dir: Path) -> None:
    if "import" in build:
        if not STEP_REF.search(build["import"]) and not (project_dir / build["import"]).is_file():
            raise fail(file, (*path, "import"), f"file not found: {build['import']}")
        return
    dockerfile = build.get("dockerfile")
    if dockerfile is not None and "dockerfile-inline" in build:
        raise fail(file, (*path, "dockerfile-inline"), "give a dockerfile path or inline text, not both")
    context = build.get("path", ".")
    if not STEP_REF.search(context) and not (project_dir / context).is_dir():
        raise fail(file, (*path, "path"), f"directory not found: {context}")
    if inline_dockerfile(build) is not None or "inject" in build:
        return  # an injected file may be the Dockerfile
    name = dockerfile or str(Path(context) / "Dockerfile")
    if not STEP_REF.search(name) and not (project_dir / name).is_file():
        raise fail(file, (*path, "dockerfile"), f"file not found: {name}")


def confine(spec: Mapping[str, Any], base: KeyPath, file: str, project_dir: Path) -> None:
    """Every host path a step names resolves inside the project directory: the project file
    comes with the code under review, and `dockerfile: ../../../etc/shadow` or
    `secrets: [id=x,src=/root/.docker/config.json]` would hand the runner's files to a build."""
    build: Mapping[str, Any] = spec.get("build") or {}
    run: Mapping[str, Any] = spec.get("run") or {}
    paths: list[tuple[KeyPath, str]] = [((*base, "build", k), str(build[k])) for k in ("path", "import") if k in build]
    if "dockerfile" in build and inline_dockerfile(build) is None:
        paths.append(((*base, "build", "dockerfile"), str(build["dockerfile"])))
    paths += [((*base, "build", "inject", src), src) for src in build.get("inject") or {}]
    paths += [((*base, "build", "secrets"), src) for src in _secret_sources(build.get("secrets") or ())]
    if "workdir" in run:
        paths.append(((*base, "run", "workdir"), str(run["workdir"])))
    paths += [((*base, "run", "files", src), src) for src in run.get("files") or {}]
    for where, value in paths:
        if STEP_REF.search(value):
            continue
        root = project_dir.resolve()
        target = (root / value).resolve()
        if target != root and root not in target.parents:
            raise fail(
                file,
                where,
                f"{value} is outside the project directory {root} "
                "(set allow-paths-outside-project: true to allow paths outside it)",
            )


def _secret_sources(specs: Sequence[Any]) -> list[str]:
    """The ``src=``/``source=`` paths of build secret specs (``id=x,src=PATH``)."""
    found = []
    for spec in specs:
        for part in str(spec).split(","):
            key, eq, value = part.partition("=")
            if eq and key.strip() in ("src", "source"):
                found.append(value)
    return found


def inline_dockerfile(build: Mapping[str, Any]) -> str | None:
    """Inline Dockerfile text: ``dockerfile-inline``, or a ``dockerfile`` that spans lines."""
    if "dockerfile-inline" in build:
        return str(build["dockerfile-inline"])
    dockerfile = build.get("dockerfile")
    if isinstance(dockerfile, str) and "\n" in dockerfile:
        return dockerfile
    return None


def push_targets(push: Any, build_tag: str, file: str, path: KeyPath) -> tuple[str, ...]:
    """Every ``repository:tag`` a step pushes, the build tag included unless turned off."""
    if isinstance(push, list) and any(isinstance(p, dict) for p in push):
        found = [t for i, p in enumerate(push) for t in push_targets(p, build_tag, file, (*path, i))]
        return tuple(dict.fromkeys(found))
    spec = push if isinstance(push, dict) else {"repository": push}
    repos = spec["repository"] if isinstance(spec["repository"], list) else [spec["repository"]]
    tags = list(spec.get("tags", ()))
    if spec.get("add-build-tag", True):
        tags.append(build_tag)
    targets: list[str] = []
    for repo in repos:
        name, tag = split_tag(repo)
        targets.extend([f"{name}:{tag}"] if tag else [])
        targets.extend(f"{name}:{t}" for t in tags)
    if not targets:
        raise fail(file, (*path, "tags"), "nothing to push: add tags, a repository:tag, or keep add-build-tag")
    for target in targets:
        try:
            parse_reference(target)
        except ToolkitError as exc:
            raise fail(file, path, exc.message) from exc
    return tuple(dict.fromkeys(targets))


def split_tag(ref: str) -> tuple[str, str]:
    """``repo[:tag]`` -> (repo, tag); a registry port is not a tag."""
    name = ref.partition("@")[0]
    head, sep, tag = name.rpartition(":")
    if sep and "/" not in tag:
        return head, tag
    return name, ""


def normalize(ref: str) -> str:
    """The familiar form BuildKit matches named contexts against: no ``docker.io/library/``,
    no ``:latest``. Used to see that a ``FROM`` names another step's pushed tag."""
    name, tag = split_tag(ref)
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/", "index.docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    return name if tag in ("", "latest") else f"{name}:{tag}"


def _check_push_conflicts(steps: Sequence[Step], file: str) -> None:
    owner: dict[str, str] = {}
    for step in steps:
        for target in step.push_targets:
            other = owner.setdefault(normalize(target), step.name)
            if other != step.name:
                raise fail(
                    file,
                    ("steps", step.name, "push"),
                    f"{target} is also pushed by step {other!r}: a step cannot re-tag another step's image "
                    "(each step pushes its own repository)",
                )


def _check_promote(promote: Mapping[str, Any], steps: Sequence[Step], file: str) -> None:
    by_name = {s.name: s for s in steps}
    for name in promote:
        if name not in by_name:
            raise fail(file, ("promote", name), f"unknown step {name!r}")
        if not by_name[name].push_targets:
            raise fail(file, ("promote", name), f"step {name!r} pushes nothing (add push: to it)")


def _with_edges(step: Step, steps: Sequence[Step], file: str, project_dir: Path) -> Step:
    by_name = {s.name: s for s in steps}
    edges: list[Edge] = []
    for index, name in enumerate(step.spec.get("depends", ())):
        if name not in by_name:
            raise fail(file, ("steps", step.name, "depends", index), f"unknown step {name!r}")
        edges.append(Edge(target=name, path=("steps", step.name, "depends", index)))
    for path, name, attr in step_refs(step.spec, ("steps", step.name)):
        if name not in by_name:
            raise fail(file, path, f"unknown step {name!r} in steps.{name}.{attr}")
        if not by_name[name].builds:
            raise fail(file, path, f"steps.{name}.{attr}: step {name!r} builds no image")
        edges.append(Edge(target=name, path=path))
    if step.builds:
        edges.extend(_base_edges(step, steps, project_dir))
        _check_base_platforms(step, edges, by_name, file)
    return dataclasses.replace(step, edges=tuple(edges))


def _check_base_platforms(step: Step, edges: Sequence[Edge], by_name: Mapping[str, Step], file: str) -> None:
    """A step built on another step's image can only build the platforms that image has."""
    for edge in edges:
        base = by_name[edge.target]
        if not (edge.context_name or edge.path[2] == "build") or not (step.platforms and base.platforms):
            continue
        missing = [p for p in step.platforms if platform_key(p) not in {platform_key(b) for b in base.platforms}]
        if missing:
            raise fail(
                file,
                ("steps", step.name, "build", "platforms"),
                f"{missing[0]} is not built by step {base.name!r}, whose image this step builds on "
                f"(it builds {', '.join(base.platforms)})",
            )


def step_refs(value: Any, path: KeyPath) -> Iterator[tuple[KeyPath, str, str]]:
    """(key path, step name, attribute) for every ``steps.<name>.<attr>`` in ``value``."""
    if isinstance(value, str):
        for match in STEP_REF.finditer(value):
            yield path, bytes.fromhex(match.group(1)).decode(errors="replace"), match.group(2)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from step_refs(item, (*path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from step_refs(item, (*path, index))


def substitute(value: Any, lookup: Callable[[str, str], str]) -> Any:
    """``value`` with every step-reference marker replaced by ``lookup(name, attr)``."""
    if isinstance(value, str):
        return STEP_REF.sub(lambda m: lookup(bytes.fromhex(m.group(1)).decode(errors="replace"), m.group(2)), value)
    if isinstance(value, dict):
        return {k: substitute(v, lookup) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, lookup) for v in value]
    return value


_FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", re.IGNORECASE | re.MULTILINE)
_COPY_FROM = re.compile(r"--from=(\S+)", re.IGNORECASE)


def dockerfile_text(build: Mapping[str, Any], project_dir: Path) -> str:
    inline = inline_dockerfile(build)
    if inline is not None:
        return inline
    name = build.get("dockerfile") or str(Path(build.get("path", ".")) / "Dockerfile")
    try:
        return (project_dir / name).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def image_names(text: str) -> list[str]:
    """Images a Dockerfile reads (``FROM`` and ``--from=``), minus its own stage names."""
    stages: set[str] = set()
    names: list[str] = []
    for match in _FROM.finditer(text):
        if match.group(1).lower() not in stages:
            names.append(match.group(1))
        if match.group(2):
            stages.add(match.group(2).lower())
    names.extend(m.group(1) for m in _COPY_FROM.finditer(text) if m.group(1).lower() not in stages)
    return [n for n in dict.fromkeys(names) if not n.isdigit() and "$" not in n]


def _base_edges(step: Step, steps: Sequence[Step], project_dir: Path) -> list[Edge]:
    pushed = {normalize(t): s.name for s in steps for t in s.push_targets}
    edges: list[Edge] = []
    path: KeyPath = ("steps", step.name, "build", "dockerfile")
    for image in image_names(dockerfile_text(step.spec["build"], project_dir)):
        target = pushed.get(normalize(image))
        if target is not None:
            edges.append(Edge(target=target, path=path, context_name=normalize(image)))
    return edges


def _order(steps: Sequence[Step], file: str) -> list[Step]:
    """Stable topological order; a cycle is reported at the key that closes it."""
    by_name = {s.name: s for s in steps}
    _find_cycle(steps, by_name, file)
    placed: list[Step] = []
    done: set[str] = set()
    while len(placed) < len(steps):
        ready = next(s for s in steps if s.name not in done and all(d in done for d in s.depends))
        placed.append(ready)
        done.add(ready.name)
    return placed


def _find_cycle(steps: Sequence[Step], by_name: Mapping[str, Step], file: str) -> None:
    state: dict[str, int] = {}

    def visit(step: Step, trail: list[str]) -> None:
        state[step.name] = 1
        for edge in step.edges:
            if state.get(edge.target) == 1:
                chain = " -> ".join([*trail[trail.index(edge.target) :], edge.target])
                raise fail(file, edge.path, f"dependency cycle: {chain}")
            if edge.target not in state:
                visit(by_name[edge.target], [*trail, edge.target])
        state[step.name] = 2

    for step in steps:
        if step.name not in state:
            visit(step, [step.name])
