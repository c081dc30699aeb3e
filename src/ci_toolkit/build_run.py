"""Execution of one build (filled in next)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ci_toolkit.errors import ToolkitError

if TYPE_CHECKING:
    from ci_toolkit.build import BuildHost, BuildRequest, BuildResult


def execute(request: BuildRequest, host: BuildHost) -> BuildResult:
    raise ToolkitError.failed("build: not implemented yet")
