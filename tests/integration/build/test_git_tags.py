"""Tags from the git context on the test bed: a GitHub tag push of v1.2.3 with
metadata-action's semver rules pushes 1.2.3, 1.2 and latest, with the version label."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import requests

from tests.helpers import run_cli_process
from tests.integration.conftest import PUSH_REGISTRY
from tests.integration.registry.test_promote_support import unique

SHA = "90dd6032fac8bda1b6c4436a2e65de27961ed071"


def test_build_tags_from_a_semver_git_tag(tmp_path: Path) -> None:
    repo = unique("ci-toolkit-git-tags")
    (tmp_path / "Dockerfile").write_text("FROM busybox\nCOPY hello.txt /hello.txt\n")
    (tmp_path / "hello.txt").write_text("hello\n")
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REF": "refs/tags/v1.2.3",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_SHA": SHA,
        "GITHUB_RUN_NUMBER": "7",
        "GITHUB_OUTPUT": str(tmp_path / "out"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
    }
    result = run_cli_process(
        [
            *("--json", "build", str(tmp_path), "--tag", f"{PUSH_REGISTRY}/{repo}:build-7", "--push"),
            *("--cache-backend", "none", "--tags-from", "type=semver,pattern={{version}}"),
            *("--tags-from", "type=semver,pattern={{major}}.{{minor}}\ntype=sha"),
        ],
        env=env,
        cwd=tmp_path,
    )
    assert result.code == 0, result.err
    listed = requests.get(f"http://{PUSH_REGISTRY}/v2/{repo}/tags/list", timeout=30).json()["tags"]
    assert sorted(listed) == sorted(["build-7", "1.2.3", "1.2", "latest", "sha-90dd603"])
    inspected = subprocess.run(
        ["docker", "buildx", "imagetools", "inspect", "--format", "{{json .Image}}", f"{PUSH_REGISTRY}/{repo}:1.2"],
        capture_output=True,
        text=True,
        check=True,
    )
    labels = json.loads(inspected.stdout)["config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == "1.2.3"
    assert labels["org.opencontainers.image.revision"] == SHA
    assert f"{PUSH_REGISTRY}/{repo}:1.2.3" in json.loads(result.out)["image_refs"]


def test_meta_command_outputs_like_metadata_action(tmp_path: Path) -> None:
    env = {
        "GITLAB_CI": "true",
        "CI_COMMIT_BRANCH": "feature/x",
        "CI_DEFAULT_BRANCH": "main",
        "CI_COMMIT_SHA": SHA,
        "CI_PROJECT_URL": "https://gitlab.example/group/app",
        "CI_TOOLKIT_OUTPUTS_FILE": str(tmp_path / "out.env"),
    }
    result = run_cli_process(
        ["meta", "--image", "reg/app", "--tags-from", "type=ref,event=branch\ntype=sha"], env=env, cwd=tmp_path
    )
    assert result.code == 0, result.err
    assert result.out.split() == ["reg/app:feature-x", "reg/app:sha-90dd603"]
    outputs = (tmp_path / "out.env").read_text()
    assert "CI_TOOLKIT_VERSION=feature-x" in outputs
    assert "org.opencontainers.image.source=https://gitlab.example/group/app" in outputs


def test_summary_shows_each_pushed_platform_as_the_registry_has_it(tmp_path: Path) -> None:
    repo = unique("ci-toolkit-summary")
    (tmp_path / "Dockerfile").write_text("FROM busybox\nCOPY hello.txt /hello.txt\n")
    (tmp_path / "hello.txt").write_text("hello\n")
    summary = tmp_path / "summary.md"
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "octo/app",
        "GITHUB_RUN_ID": "99",
        "GITHUB_SHA": SHA,
        "GITHUB_RUN_NUMBER": "8",
        "GITHUB_OUTPUT": str(tmp_path / "out"),
        "GITHUB_STEP_SUMMARY": str(summary),
        "CI_TOOLKIT_INSECURE_REGISTRIES": PUSH_REGISTRY,
    }
    ref = f"{PUSH_REGISTRY}/{repo}:build-8"
    result = run_cli_process(
        [
            "build",
            str(tmp_path),
            "-t",
            ref,
            "--push",
            "--platform",
            "linux/amd64,linux/arm64",
            "--cache-backend",
            "none",
        ],
        env=env,
        cwd=tmp_path,
    )
    assert result.code == 0, result.err
    raw = subprocess.run(
        ["docker", "buildx", "imagetools", "inspect", "--raw", ref], capture_output=True, text=True, check=True
    )
    platforms = {
        f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
        for m in json.loads(raw.stdout)["manifests"]
        if m["platform"]["os"] != "unknown"
    }
    text = summary.read_text()
    for platform, digest in platforms.items():
        assert re.search(rf"\| {platform} \| `{digest}` \| [\d.]+ (KiB|MiB) \|", text), text
        assert f"{platform}: {digest} (" in result.out
    assert "https://github.com/octo/app/actions/runs/99" in text
