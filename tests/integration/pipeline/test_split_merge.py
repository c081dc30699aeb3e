"""A pipeline split across platforms: `pipeline run --platform P --push-by-digest` once per
platform (the second step builds on the first step's digest of that platform), then
`pipeline merge` tags one index per step. A platform job that never ran fails the merge
before any step is tagged."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.integration.conftest import PUSH_REGISTRY
from tests.integration.pipeline.helpers import Project, copy_example, index_platforms, run_arm64

PIPELINE = """\
build-registry: 127.0.0.1:5000
insecure-registries: [127.0.0.1:5000, 127.0.0.1:5001, 127.0.0.1:5002]
steps:
  build-base:
    build:
      dockerfile: |
        FROM {{{{ DOCKER_REGISTRY }}}}/busybox:latest
        RUN echo "written by build-base" > /base.txt
      platforms: [linux/amd64, linux/arm64/v8]
    push: {repo}/test-image1
  build-from-base:
    build:
      dockerfile: |
        FROM {repo}/test-image1:{{{{ BUILD_TAG }}}}
        RUN uname -m > /built-on.txt
      platforms: [linux/amd64, linux/arm64/v8]
    push: {repo}/test-image2:latest
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[Project, str]]:
    repo = f"{PUSH_REGISTRY}/ci-toolkit-split-{uuid.uuid4().hex[:10]}"
    proj = copy_example("split", tmp_path, PIPELINE.format(repo=repo))
    yield proj, repo
    proj.remove_images()
    subprocess.run(["docker", "image", "rm", "-f", f"{repo}/test-image2:latest"], capture_output=True)


def _tag_exists(ref: str) -> bool:
    name, _, tag = ref.rpartition(":")
    path = name.removeprefix(f"{PUSH_REGISTRY}/")
    url = f"http://{PUSH_REGISTRY}/v2/{path}/manifests/{tag}"
    return requests.head(url, headers={"Accept": "application/vnd.oci.image.index.v1+json"}, timeout=30).ok


def test_platform_runs_merge_into_one_index_per_step(project: tuple[Project, str]) -> None:
    proj, repo = project
    for platform in ("linux/amd64", "linux/arm64"):
        result = proj.run("run", "--platform", platform, "--push-by-digest", "--digest-dir", "digests")
        assert result.code == 0, result.err[-3000:]
        steps = proj.artifacts()
        assert list(steps["build-from-base"]["platforms"]) == [platform]
        # The second step built on this platform's digest of the first, not on a tag.
        assert f"docker-image://{steps['build-base']['image']}" in result.err
    assert not _tag_exists(f"{repo}/test-image2:latest")  # nothing tagged before the merge
    merged = proj.run("merge", "--digest-dir", "digests")
    assert merged.code == 0, merged.err[-3000:]
    steps = proj.artifacts()
    for name in ("build-base", "build-from-base"):
        assert sorted(steps[name]["platforms"]) == ["linux/amd64", "linux/arm64"]
        assert index_platforms(steps[name]["image"]) == ["linux/amd64", "linux/arm64"]
    assert _tag_exists(f"{repo}/test-image1:{proj.build_tag}")
    out = run_arm64(f"{repo}/test-image2:latest", "uname -m; cat /base.txt /built-on.txt")
    assert out.split() == ["aarch64", "written", "by", "build-base", "aarch64"]


def test_merge_with_a_platform_missing_tags_no_step(project: tuple[Project, str]) -> None:
    proj, repo = project
    result = proj.run("run", "--platform", "linux/amd64", "--push-by-digest", "--digest-dir", "digests")
    assert result.code == 0, result.err[-3000:]
    merged = proj.run("merge", "--digest-dir", "digests")
    assert merged.code == 1
    assert merged.error_lines == [merged.error_lines[0]]
    assert "step build-base" in merged.error_lines[0] and "linux/arm64 missing" in merged.error_lines[0]
    assert not _tag_exists(f"{repo}/test-image1:{proj.build_tag}")
    assert not _tag_exists(f"{repo}/test-image2:latest")
    shutil.rmtree(proj.dir / "digests")


def test_push_by_digest_needs_one_platform(project: tuple[Project, str]) -> None:
    proj, _ = project
    result = proj.run("run", "--push-by-digest")
    assert result.code == 2
    assert "exactly one --platform" in result.err
