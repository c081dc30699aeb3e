"""What the last build on a key did with its cache (imported, exported or unchanged, cache
mounts, transport), kept beside the entry's generations so ``cache ls`` can show it."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path

from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.files import write_atomic

TYPE_CHECKING = False  # not typing's: importing typing costs every command's start-up (CONTRIBUTING)
if TYPE_CHECKING:
    from typing import Any

NAME = "last-build.json"


def record(entry: Path, outcome: Mapping[str, Any]) -> None:
    """Best effort, atomic (a reader sees the old or the new record, never half of one); never
    through a planted symlink (see core.files). Not synced to disk: it only informs ``cache
    ls``, a crash that loses it loses nothing (``read`` gives {} for a missing or empty file),
    and two fsyncs were a large part of a cached build's fixed cost (issue 14, B1)."""
    with contextlib.suppress(ToolkitError):
        write_atomic(entry / NAME, json.dumps(dict(outcome), sort_keys=True), durable=False)


def read(entry: Path) -> dict[str, Any]:
    try:
        data = json.loads((entry / NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
