"""build.warm: what an unchanged build leaves in an entry a CI cache carries."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_toolkit.build import warm
from ci_toolkit.cache import last_build


@pytest.mark.parametrize(
    ("transport", "export", "recorded"),
    [
        ("none", "unchanged", True),  # a runner's own disk: cache ls shows the last build
        ("none", "committed", True),
        ("cirrus-cache", "committed", True),  # the folder changed anyway: a new generation
        ("cirrus-cache", "unchanged", False),  # not a byte changed: nothing to upload again
        ("gitlab-cache", "unchanged", False),
        ("actions-cache", "unchanged", False),
    ],
)
def test_an_unchanged_build_leaves_a_carried_entry_as_restored(
    tmp_path: Path, transport: str, export: str, recorded: bool
) -> None:
    last_build.record(tmp_path, {"export": "committed", "generation": "gen-1"})
    before = (tmp_path / last_build.NAME).read_bytes()
    warm.record(tmp_path, warm.Outcome(export=export, transport=transport, generation="gen-1"))
    assert ((tmp_path / last_build.NAME).read_bytes() != before) is recorded
    assert last_build.read(tmp_path)["export"] == (export if recorded else "committed")
