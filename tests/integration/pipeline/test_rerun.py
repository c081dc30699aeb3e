"""A CI re-run reuses its BUILD_TAG: ten consecutive `pipeline run --push` of the three-step
example with one fixed build number all succeed (each overwrites the tags the last one
pushed; a registry's transient answer to that race is retried, not fatal)."""

from __future__ import annotations

from pathlib import Path

from tests.integration.pipeline.helpers import copy_example


def test_ten_reruns_with_one_build_tag_all_succeed(tmp_path: Path) -> None:
    project = copy_example("three-step", tmp_path)
    try:
        for run in range(10):
            result = project.run("run", "--push")
            assert result.code == 0, f"run {run + 1} failed:\n{result.err}"
            assert all(step["status"] == "ok" for step in project.artifacts().values())
            assert "Traceback" not in result.err
    finally:
        project.remove_images()
