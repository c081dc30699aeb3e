"""What a command's process imports before it does any work. A cached ``ci-toolkit build`` is
dominated by the interpreter's start-up (issue 14, B1: at most 40 ms over raw buildx), so the
build path imports no heavy library at module level, and none of the stdlib modules that only
rare paths need: each costs every build a few milliseconds.

The modules are imported afresh in this process (their earlier copies set aside and put back),
with every import statement they execute recorded: a name already in ``sys.modules`` is still
recorded, so the check does not depend on what pytest loaded first."""

from __future__ import annotations

import builtins
import importlib
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest

# Never at module level of the build path: third-party libraries (lazily, inside the
# functions that need them), typing (annotations only: TYPE_CHECKING = False), and stdlib
# modules only a rare path needs.
NOT_AT_START = {
    "docker",
    "requests",
    "jinja2",
    "yaml",
    "dotenv",
    "typing",
    "secrets",
    "tarfile",
    "ipaddress",
    "difflib",
    "shlex",
    "datetime",
}
NOT_FOR_BUILD = (
    "ci_toolkit.registry",
    "ci_toolkit.pipeline",
    "ci_toolkit.containers",
    "ci_toolkit.build.refusals",
    "ci_toolkit.cache.mounts",  # only a Dockerfile with cache mounts needs it
    "ci_toolkit.core.templates",  # only a project file is rendered
)

BUILD_PATH = ("ci_toolkit.cli", "ci_toolkit.commands.build", "ci_toolkit.build.execute", "ci_toolkit.build.summary")
MERGE_PATH = ("ci_toolkit.cli", "ci_toolkit.commands.merge", "ci_toolkit.registry.merge", "ci_toolkit.registry.digests")
PUSH_PATH = (*BUILD_PATH, "ci_toolkit.build.by_digest", "ci_toolkit.registry.layout", "ci_toolkit.registry.describe")


@contextmanager
def _fresh_imports() -> Iterator[set[str]]:
    """Import statements run by ci_toolkit modules (and the modules they import afresh)."""
    saved = {name: mod for name, mod in sys.modules.items() if name == "ci_toolkit" or name.startswith("ci_toolkit.")}
    for name in saved:
        del sys.modules[name]
    seen: set[str] = set()
    real_import = builtins.__import__

    def recording(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        caller = (globals or {}).get("__name__", "")
        if level == 0 and caller.startswith("ci_toolkit"):
            seen.add(name)
            seen.update(f"{name}.{item}" for item in fromlist or () if name.startswith("ci_toolkit"))
        return real_import(name, globals, locals, fromlist, level)

    builtins.__import__ = recording
    try:
        yield seen
    finally:
        builtins.__import__ = real_import
        for name in [n for n in sys.modules if n == "ci_toolkit" or n.startswith("ci_toolkit.")]:
            del sys.modules[name]
        sys.modules.update(saved)


def _imported_by(roots: Sequence[str]) -> set[str]:
    with _fresh_imports() as seen:
        for root in roots:
            importlib.import_module(root)
        loaded = {n for n in sys.modules if n.startswith("ci_toolkit")}
    return seen | loaded


@pytest.mark.parametrize("roots", [BUILD_PATH, MERGE_PATH, PUSH_PATH], ids=["build", "merge", "push-by-digest"])
def test_a_command_starts_without_heavy_or_rare_imports(roots: Sequence[str]) -> None:
    imported = _imported_by(roots)
    heavy = sorted(n for n in imported if n.split(".")[0] in NOT_AT_START)
    assert heavy == [], f"imported at module level on the {roots[-1]} path: {heavy}; import them where used"


def test_the_build_path_does_not_load_other_capabilities() -> None:
    imported = _imported_by(BUILD_PATH)
    assert sorted(n for n in imported if n.startswith(NOT_FOR_BUILD)) == []


def test_the_guard_sees_an_import_that_is_already_loaded() -> None:
    """The check can fail: typing is loaded in this process, and core.retry's type-only import
    of it is not recorded, while an ordinary module-level import would be."""
    assert "typing" in sys.modules
    assert "json" in _imported_by(("ci_toolkit.core.ci",))
    assert "typing" not in _imported_by(("ci_toolkit.core.retry",))
