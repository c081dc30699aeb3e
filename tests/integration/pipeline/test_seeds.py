"""Both seed examples build for linux/amd64 and linux/arm64: the two inline-Dockerfile steps
where the second is FROM the first's pushed tag, and the one multi-stage Dockerfile with
targets stage1 and stage2. The second image's arm64 variant runs under QEMU and contains the
file the first step wrote."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.pipeline.helpers import Project, copy_example, index_platforms, run_arm64


@pytest.fixture
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Project]:
    proj = copy_example(request.param, tmp_path)
    yield proj
    proj.remove_images()


@pytest.mark.parametrize(
    ("project", "written"),
    [("seed-inline", "written by build-base"), ("seed-multistage", "written by stage1")],
    indirect=["project"],
)
def test_seed_example_builds_for_two_platforms(project: Project, written: str) -> None:
    result = project.run("run")
    assert result.code == 0, result.err[-3000:]
    steps = project.artifacts()
    assert list(steps) == ["build-base", "build-from-base"]
    for name, step in steps.items():
        assert step["status"] == "ok"
        assert step["image"].endswith(step["digest"]) and step["digest"].startswith("sha256:")
        assert sorted(step["platforms"]) == ["linux/amd64", "linux/arm64"], name
        assert index_platforms(step["image"]) == ["linux/amd64", "linux/arm64"], name
    out = run_arm64(steps["build-from-base"]["image"], "uname -m; cat /base.txt /built-on.txt")
    assert out.split()[0] == "aarch64"
    assert written in out
    assert out.strip().endswith("aarch64")  # the RUN in the second step itself ran as arm64


def test_inline_seed_hands_the_base_over_by_digest(tmp_path: Path) -> None:
    proj = copy_example("seed-inline", tmp_path)
    try:
        result = proj.run("run", "--platform", "linux/arm64")
        assert result.code == 0, result.err[-3000:]
        base = proj.artifacts()["build-base"]["image"]
        assert f"--build-context test-image1:{proj.build_tag}=docker-image://{base}" in result.err
        assert sorted(proj.artifacts()["build-from-base"]["platforms"]) == ["linux/arm64"]
    finally:
        proj.remove_images()
