"""The layout is the architecture: imports run one way (commands -> capabilities -> core) and
no module imports another in a cycle. Read from the source with ``ast``; nothing is imported."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "src" / "ci_toolkit"

# Which top-level parts of ci_toolkit each part may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "app": {"core"},
    "mirror": {"core"},
    "cache": {"core"},
    "registry": {"core", "mirror"},
    "containers": {"core", "mirror", "registry"},
    "build": {"core", "app", "cache", "mirror", "registry"},
    "pipeline": {"core", "app", "build", "cache", "containers", "mirror", "registry"},
    "commands": {"core", "app", "build", "cache", "containers", "mirror", "pipeline", "registry"},
    "cli": {"core", "app", "commands"},
    "reference": {"core", "cli"},
    "__main__": {"cli"},
    "__init__": {"_version"},
    "_version": set(),
    "launcher": set(),  # runs scripts/ci-action, shipped in the wheel  # written by setuptools-scm from the git tag
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 2:
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> Iterator[str]:
    """Every ci_toolkit module a file imports, including lazy imports inside functions."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("ci_toolkit"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ci_toolkit"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                yield candidate if _is_module(candidate) else node.module


def _is_module(dotted: str) -> bool:
    rel = Path(*dotted.split(".")[1:])
    return (SRC / rel).with_suffix(".py").is_file() or (SRC / rel / "__init__.py").is_file()


def part_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def graph() -> dict[str, set[str]]:
    return {module_name(p): set(imported_modules(p)) for p in SRC.rglob("*.py")}


def test_every_part_is_known() -> None:
    assert {part_of(m) for m in graph()} <= set(ALLOWED)


def test_imports_run_one_way() -> None:
    wrong = [
        f"{mod} imports {dep}"
        for mod, deps in graph().items()
        for dep in deps
        if part_of(dep) not in {part_of(mod), "__init__"} and part_of(dep) not in ALLOWED[part_of(mod)]
    ]
    assert wrong == []


def test_no_private_names_across_parts() -> None:
    wrong = []
    for path in SRC.rglob("*.py"):
        mod = module_name(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ci_toolkit"):
                if part_of(node.module) == part_of(mod):
                    continue
                wrong += [f"{mod} imports {node.module}.{a.name}" for a in node.names if _private(a.name)]
    assert wrong == []


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_cycles() -> None:
    edges = graph()
    # A package's __init__ re-exporting from its own modules is not a cycle of behaviour.
    for mod in edges:
        edges[mod] = {d for d in edges[mod] if not mod.startswith(d + ".") and d != mod}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_functions_stay_short() -> None:
    long = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno:
                length = node.end_lineno - node.lineno + 1
                if length > 60:
                    long.append(f"{module_name(path)}.{node.name}: {length} lines")
    assert long == []
