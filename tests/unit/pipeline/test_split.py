"""Split builds: the per-platform plan pushes untagged, by digest, under a cache key of its
own; the digest files round-trip; bad combinations are refused before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.registry import digests
from tests.helpers import REPO, run_cli

EXAMPLE = REPO / "examples" / "pipelines" / "three-step"
ENV = {"BUILD_NUMBER": "42", "GIT_SHA": "0123456789abcdef0123456789abcdef01234567", "GIT_BRANCH": "main"}


def _plan(*extra: str) -> dict[str, dict[str, object]]:
    args = ["--json", "pipeline", "plan", "--set", "cache-root=/nonexistent/c", *extra]
    result = run_cli(args, env=ENV, cwd=EXAMPLE)
    assert result.code == 0, result.err
    return {s["name"]: s for s in json.loads(result.out)["steps"]}


def test_per_platform_plan_pushes_by_digest_with_its_own_cache_key() -> None:
    steps = _plan("--platform", "linux/arm64", "--push-by-digest")
    command = str(steps["app"]["command"])
    assert "--tag" not in command and "--push " not in command
    assert "--output type=oci,dest=" in command
    assert steps["app"]["platforms"] == ["linux/arm64"]
    assert steps["app"]["cache"] == {"key": "three-step-app-linux-arm64", "backend": "local"}


def test_push_by_digest_needs_exactly_one_platform() -> None:
    result = run_cli(["pipeline", "plan", "--push-by-digest"], env=ENV, cwd=EXAMPLE)
    assert result.code == 2
    assert result.error_lines == ["error: --push-by-digest builds one platform: give exactly one --platform"]


def test_digest_files_round_trip(tmp_path: Path) -> None:
    record = digests.DigestRecord(
        platform="linux/arm64/v8", repository="reg.example/app", digest="sha256:" + "a" * 64, step="base"
    )
    path = digests.write(tmp_path / "out", "linux/arm64/v8", [record])
    assert path.name == "linux-arm64.json"
    (found,) = digests.read(tmp_path)
    assert (found.platform, found.repository, found.digest, found.step) == (
        "linux/arm64",
        "reg.example/app",
        record.digest,
        "base",
    )


def test_a_broken_digest_file_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "linux-amd64.json").write_text("{}")
    with pytest.raises(ToolkitError) as caught:
        digests.read(tmp_path)
    assert caught.value.exit_code == 2 and "not a digest file" in caught.value.message


def test_build_refuses_a_tag_with_push_by_digest(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    args = ["build", str(tmp_path), "--push-by-digest", "--platform", "linux/amd64", "--tag", "reg.example/app:v1"]
    result = run_cli(args, cwd=tmp_path)
    assert result.code == 2
    assert "without :tag" in result.error_lines[0]


SEED = REPO / "examples" / "pipelines" / "seed-no-settings"


def test_plan_names_the_temporary_registry_path_and_why() -> None:
    args = ["pipeline", "plan", "--set", "cross-step-bases=temporary-registry", "--set", "cache-root=/nonexistent/c"]
    result = run_cli(args, env=ENV, cwd=SEED)
    assert result.code == 0, result.err
    assert result.out.splitlines()[0].startswith("bases: temporary registry: ")
    assert "--build-context 'test-image1:0123456-42=docker-image://127.0.0.1:<port>/" in result.out


def test_plan_says_build_registry_wins() -> None:
    args = [
        "--json",
        "pipeline",
        "plan",
        "--set",
        "build-registry=127.0.0.1:5000",
        "--set",
        "cache-root=/nonexistent/c",
    ]
    result = run_cli(args, env=ENV, cwd=SEED)
    assert result.code == 0, result.err
    assert json.loads(result.out)["bases"]["path"] == "build-registry"


def test_a_pipeline_without_cross_step_bases_needs_no_path() -> None:
    result = run_cli(["--json", "pipeline", "plan", "--set", "cache-root=/nonexistent/c"], env=ENV, cwd=EXAMPLE)
    assert result.code == 0, result.err
    assert json.loads(result.out)["bases"]["path"] == "build-registry"  # the example sets it
