"""What a step's build needs from the app: the app itself, with relative paths resolving
against the project directory."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ci_toolkit.app import App
    from ci_toolkit.core.ci import CIContext
    from ci_toolkit.core.report import Reporter
    from ci_toolkit.core.settings import Settings


@dataclass(frozen=True)
class StepHost:
    """The app, with relative build paths resolving against the project directory."""

    app: App
    cwd: Path

    @property
    def settings(self) -> Settings:
        return self.app.settings

    @property
    def env(self) -> Mapping[str, str]:
        return self.app.env

    @property
    def ci(self) -> CIContext:
        return self.app.ci

    @property
    def reporter(self) -> Reporter:
        return self.app.reporter

    @property
    def dry_run(self) -> bool:
        return self.app.dry_run
