from __future__ import annotations

from ci_toolkit.cli import run

run()
