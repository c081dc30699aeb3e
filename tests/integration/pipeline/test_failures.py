"""A failed step stops the steps that depend on it; with --keep-going independent steps
still run; the run exits 1, and the results say which step failed and why."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.integration.pipeline.helpers import copy_example


def _text() -> str:
    marker = uuid.uuid4().hex[:8]
    return f"""build-registry: 127.0.0.1:5000
steps:
  broken:
    build:
      dockerfile: |
        FROM busybox
        RUN echo {marker} && exit 3
  after-broken:
    build:
      dockerfile: |
        FROM {{{{ steps.broken.image }}}}
        RUN true
  independent:
    build:
      dockerfile: |
        FROM busybox
        RUN echo {marker} > /ok
"""


def test_failure_stops_everything_after_it_without_keep_going(tmp_path: Path) -> None:
    proj = copy_example("failing", tmp_path, _text())
    try:
        result = proj.run("run")
        assert result.code == 1
        steps = proj.artifacts()
        assert steps["broken"]["status"] == "failed"
        assert "exit code: 3" in steps["broken"]["reason"]
        assert steps["after-broken"]["status"] == "skipped"
        assert steps["independent"]["status"] == "not run"
        assert any(line.startswith("error: step broken failed") for line in result.err.splitlines())
    finally:
        proj.remove_images()


def test_keep_going_runs_independent_steps_and_publishes_results(tmp_path: Path) -> None:
    proj = copy_example("failing", tmp_path, _text())
    outputs, summary = tmp_path / "outputs.env", tmp_path / "summary.md"
    try:
        result = proj.run(
            "run",
            "--keep-going",
            env={"CI_TOOLKIT_OUTPUTS_FILE": str(outputs), "GITHUB_STEP_SUMMARY": str(summary)},
        )
        assert result.code == 1
        steps = proj.artifacts()
        assert [steps[n]["status"] for n in ("broken", "after-broken", "independent")] == ["failed", "skipped", "ok"]
        assert steps["after-broken"]["reason"] == "depends on broken, which did not succeed"
        digest = steps["independent"]["digest"]
        assert f"CI_TOOLKIT_INDEPENDENT_DIGEST={digest}" in outputs.read_text()
        table = summary.read_text()
        assert "| broken | failed |" in table and "| independent | ok |" in table
    finally:
        proj.remove_images()
