"""The small text grammars shared by settings and flags: durations, sizes, timestamps and
``k1=v1,k2=v2`` pairs. One grammar each, so `service-timeout`, `mirror-timeout`,
`--older-than` and `--max-age` accept the same spellings, and `container-labels` reads the
same in a file, the environment and `--container-labels`."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ci_toolkit.core.errors import ToolkitError

TYPE_CHECKING = False  # not typing's: importing typing costs every command's start-up (CONTRIBUTING)
if TYPE_CHECKING:
    from datetime import datetime

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_duration(text: str, what: str, *, positive: bool = False) -> float:
    """``90``, ``90s``, ``500ms``, ``5m``, ``1h30m``, ``2d``, ``1w`` -> seconds.
    ``positive`` refuses zero, for timeouts."""
    raw = text.strip().lower()
    total = -1.0
    if re.fullmatch(r"\d+(\.\d+)?", raw):
        total = float(raw)
    elif raw:
        pos, total = 0, 0.0
        for match in _DURATION.finditer(raw):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            pos = match.end()
        if pos != len(raw):
            total = -1.0
    if not total < float("inf") or total < 0 or (positive and total == 0):
        raise ToolkitError.bad_input(f"{what}: {text!r} is not a duration (e.g. 500ms, 90s, 5m, 6h, 2d)")
    return total


def parse_size(text: str, what: str = "size") -> int:
    """``500M``, ``20G``, ``1.5k``, ``10`` (bytes); binary multiples."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?\s*", text.lower())
    if not match:
        raise ToolkitError.bad_input(f"{what}: {text!r} is not a size (e.g. 500M, 20G)")
    value = float(match.group(1)) * _SIZE_UNITS[match.group(2)]
    if not value < 2**63:
        raise ToolkitError.bad_input(f"{what}: {text!r} is too large")
    return int(value)


def parse_time(text: str) -> datetime | None:
    """RFC 3339 timestamps, including Go's nanoseconds (engine, registry, OCI labels)."""
    from datetime import datetime, timezone  # here: a build reads no timestamp

    text = text.strip()
    if not text:
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00"))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def parse_pairs(items: Sequence[str], what: str) -> dict[str, str]:
    """``K=V`` items, each possibly a comma-separated list (``k1=v1,k2=v2``)."""
    result: dict[str, str] = {}
    for item in items:
        for part in filter(None, (p.strip() for p in item.split(","))):
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise ToolkitError.bad_input(f"{what} expects KEY=VALUE, got {part!r}")
            result[key.strip()] = value.strip()
    return result
