"""What a command receives: the resolved settings, the job's environment, the CI context and
the reporter. Built once in ``cli.main``; commands never read os.environ themselves."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ci_toolkit.core.ci import CIContext
from ci_toolkit.core.config import Loaded
from ci_toolkit.core.report import Reporter
from ci_toolkit.core.settings import Settings

TYPE_CHECKING = False  # not typing's: importing typing costs every command's start-up (CONTRIBUTING)
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True, kw_only=True)
class App:
    """What every command receives."""

    config: Loaded
    reporter: Reporter
    cwd: Path
    dry_run: bool = False

    @property
    def settings(self) -> Settings:
        return self.config.settings

    @property
    def env(self) -> Mapping[str, str]:
        return self.config.env

    @property
    def ci(self) -> CIContext:
        return self.config.ci

    @property
    def project(self) -> Mapping[str, Any]:
        return self.config.project
