"""`ci-toolkit pipeline plan`: deterministic, matches the checked-in snapshot for the
three-step example, and shows how each cross-step base is handed over."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.helpers import REPO, run_cli

EXAMPLE = REPO / "examples" / "pipelines" / "three-step"
SNAPSHOT = REPO / "tests" / "snapshots" / "pipeline_plan_three_step.txt"
ENV = {"BUILD_NUMBER": "42", "GIT_SHA": "0123456789abcdef0123456789abcdef01234567", "GIT_BRANCH": "main"}
CACHE_ROOT = "/nonexistent/ci-toolkit-cache"


def _plan(*extra: str) -> str:
    result = run_cli(["pipeline", "plan", "--set", f"cache-root={CACHE_ROOT}", *extra], env=ENV, cwd=EXAMPLE)
    assert result.code == 0, result.err
    return result.out


def test_plan_matches_snapshot() -> None:
    out = _plan()
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(out)
    assert out == SNAPSHOT.read_text()


def test_plan_is_deterministic() -> None:
    assert _plan() == _plan()


def test_plan_hands_bases_over_by_digest() -> None:
    data = json.loads(run_cli(["--json", "pipeline", "plan", "--push"], env=ENV, cwd=EXAMPLE).out)
    steps = {s["name"]: s for s in data["steps"]}
    assert [s["name"] for s in data["steps"]] == ["base", "app", "test"]
    assert steps["app"]["depends"] == ["base"] and steps["test"]["depends"] == ["app"]
    base_ref = "127.0.0.1:5000/ci-toolkit-pipeline/three-step/base:0123456-42"
    assert f"BASE_IMAGE={base_ref}@<digest of step base>" in steps["app"]["command"]
    assert steps["test"]["build_contexts"] == {
        "127.0.0.1:5000/ci-toolkit-examples/app:0123456-42": (
            "docker-image://127.0.0.1:5000/ci-toolkit-pipeline/three-step/app:0123456-42@<digest of step app>"
        )
    }
    # Only the immutable tag while building; latest moves in the promote section at the end.
    assert steps["base"]["push"] == ["127.0.0.1:5000/ci-toolkit-examples/base:0123456-42"]
    assert steps["base"]["platforms"] == ["linux/amd64", "linux/arm64"]


def test_platform_override_and_step_selection() -> None:
    data = json.loads(
        run_cli(["--json", "pipeline", "plan", "--step", "app", "--platform", "linux/arm64"], env=ENV, cwd=EXAMPLE).out
    )
    assert [s["name"] for s in data["steps"]] == ["base", "app"]
    assert all(s["platforms"] == ["linux/arm64"] for s in data["steps"])
    assert all("--platform linux/arm64 " in s["command"] for s in data["steps"])


def test_plan_runs_nothing(tmp_path: Path) -> None:
    # The unit-test guard forbids subprocesses: reaching here means nothing ran.
    assert "docker buildx build" in _plan()


def test_plan_shows_the_promotions_that_run_only_with_push() -> None:
    data = json.loads(_plan("--json", "--push"))
    assert data["promote"] == [
        {"step": "base", "repositories": ["127.0.0.1:5000/ci-toolkit-examples/base"], "tags": ["latest"], "runs": True},
        {"step": "app", "repositories": ["127.0.0.1:5000/ci-toolkit-examples/app"], "tags": ["latest"], "runs": True},
    ]
    assert "promote (skipped: only with --push" in _plan()
