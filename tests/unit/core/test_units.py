"""One grammar for durations, sizes and timestamps across settings and flags."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ci_toolkit.core.errors import EXIT_INPUT, ToolkitError
from ci_toolkit.core.units import parse_duration, parse_size, parse_time


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("500ms", 0.5), ("5m", 300), ("1h30m", 5400), ("2d", 172800), ("1w", 604800), ("0", 0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, "x") == seconds


@pytest.mark.parametrize("text", ["", "5x", "h", "1h 2m", "-1s", "soon"])
def test_bad_durations_name_the_option(text: str) -> None:
    with pytest.raises(ToolkitError) as info:
        parse_duration(text, "--older-than")
    assert info.value.exit_code == EXIT_INPUT
    assert "--older-than" in info.value.message


def test_timeouts_must_be_positive() -> None:
    with pytest.raises(ToolkitError):
        parse_duration("0s", "service-timeout", positive=True)


@pytest.mark.parametrize(
    ("text", "value"), [("20G", 20 * 1024**3), ("500m", 500 * 1024**2), ("10", 10), ("1.5k", 1536)]
)
def test_sizes(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("bad", ["", "G", "-1G", "20X", "1e9"])
def test_bad_sizes(bad: str) -> None:
    with pytest.raises(ToolkitError) as info:
        parse_size(bad, "--max-size")
    assert "--max-size" in info.value.message


def test_times_with_nanoseconds_and_zulu() -> None:
    assert parse_time("2026-11-23T11:42:24.123456789Z") == datetime(2026, 11, 23, 11, 42, 24, 123456, timezone.utc)
    assert parse_time("2026-11-23T11:42:24") == datetime(2026, 11, 23, 11, 42, 24, tzinfo=timezone.utc)
    assert parse_time("not a time") is None
    assert parse_time("") is None
