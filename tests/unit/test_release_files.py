"""What a release checks before it builds (scripts/check-release): the newest CHANGELOG
section and every GitLab component's `version` default name the same release."""

from __future__ import annotations

import re
from types import ModuleType

from tests.helpers import REPO, load_script


def _check_release() -> ModuleType:
    return load_script(REPO / "scripts" / "check-release", "check_release")


def test_newest_changelog_section_and_component_defaults_agree() -> None:
    newest = re.search(r"^## \[(\d+\.\d+\.\d+)\]", (REPO / "CHANGELOG.md").read_text(), re.M)
    assert newest is not None
    check = _check_release()
    assert check.problems(newest.group(1)) == []
    wrong = check.problems("0.0.1")
    assert len(wrong) == 5, wrong  # the changelog and the four components
    assert check.main(["v1"]) == 2
