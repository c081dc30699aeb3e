"""templates/gitlab-ci.yml, run as a GitLab runner runs a job that extends it: variables
merged and expanded, before_script + script in one shell, after_script in another, the dotenv
report handed to the next job, against the test bed. The toolkit is cloned by the template
itself from a local git repository standing in for CI_TOOLKIT_REPO."""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.ci.test_action_support import (
    REPO,
    JobRun,
    base_env,
    expand_variables,
    head_commit,
    make_toolkit_repo,
    parse_dotenv,
    planted_installer,
    registry_digest,
    run_lines,
    shared_venv_root,
    unique_repo,
)

TEMPLATE = REPO / "templates" / "gitlab-ci.yml"
SHA = "89abcdef0123456789abcdef0123456789abcdef"


def load_template() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(TEMPLATE.read_text())
    return data


def resolve(jobs: Mapping[str, Any], name: str) -> dict[str, Any]:
    """GitLab's `extends:`: hashes merged deeply, everything else replaced by the child."""
    job = dict(jobs[name])
    parent = job.pop("extends", None)
    if parent is None:
        return job
    return _merge(resolve(jobs, parent), job)


def _merge(base: Mapping[str, Any], child: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@pytest.fixture(scope="session")
def toolkit_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_toolkit_repo(tmp_path_factory.mktemp("toolkit-repo"))


@pytest.fixture(scope="session")
def venv_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_venv_root(tmp_path_factory)


class Runner:
    def __init__(self, toolkit_repo: Path, venv_root: Path, project: Path) -> None:
        self.project = project
        self.pipeline_id = str(uuid.uuid4().int % 10**8)
        # The job's own temporary directory: what it leaves there is checked after the job.
        self.tmpdir = project.parent / "job-tmp"
        self.tmpdir.mkdir()
        # Runner-level and project CI/CD variables: they win over the YAML's.
        self.overrides = {
            "CI_TOOLKIT_REPO": toolkit_repo.as_uri(),
            "CI_TOOLKIT_COMMIT": head_commit(toolkit_repo),
            "CI_TOOLKIT_VENV_ROOT": str(venv_root),
            "TMPDIR": str(self.tmpdir),
        }

    def run(
        self,
        job_name: str,
        variables: Mapping[str, str],
        inherited: Mapping[str, str] | None = None,
        job_id: str | None = None,
    ) -> JobRun:
        jobs = load_template()
        jobs["job"] = {"extends": job_name, "variables": dict(variables)}
        job = resolve(jobs, "job")
        job_id = job_id or str(uuid.uuid4().int % 10**9)
        env = base_env(
            CI="true",
            GITLAB_CI="true",
            CI_JOB_ID=job_id,
            CI_JOB_NAME="job",
            CI_PIPELINE_ID=self.pipeline_id,
            CI_PIPELINE_IID="42",
            CI_PIPELINE_URL=f"https://gitlab.example/group/hello/-/pipelines/{self.pipeline_id}",
            CI_COMMIT_SHA=SHA,
            CI_COMMIT_SHORT_SHA=SHA[:8],
            CI_COMMIT_BRANCH="main",
            CI_COMMIT_REF_NAME="main",
            CI_PROJECT_DIR=str(self.project),
            CI_REGISTRY_IMAGE=f"{unique_repo('gitlab')}",
            **(inherited or {}),
        )
        for key, value in (job.get("variables") or {}).items():
            env[key] = expand_variables(str(value), env)
        env.update(self.overrides)
        code, output = run_lines([*job.get("before_script", []), *job["script"]], env, self.project)
        after_code, after_output = run_lines(job.get("after_script", []), env, self.project)
        return JobRun(code, output, after_code, after_output, job_id)

    def dotenv(self, job_name: str) -> dict[str, str]:
        job = resolve(load_template(), job_name)
        path = self.project / job["artifacts"]["reports"]["dotenv"]
        values = parse_dotenv(path)
        path.unlink()
        return values


@pytest.fixture
def runner(toolkit_repo: Path, venv_root: Path, tmp_path: Path) -> Runner:
    project = tmp_path / "project"
    shutil.copytree(REPO / "examples" / "hello", project)
    return Runner(toolkit_repo, venv_root, project)


def test_template_parses_and_defines_the_four_jobs() -> None:
    jobs = load_template()
    for name in (".ci-toolkit-build", ".ci-toolkit-pipeline", ".ci-toolkit-promote", ".ci-toolkit-sweep"):
        job = resolve(jobs, name)
        assert job["script"], name
        assert any("ci-sweep" in line for line in resolve(jobs, ".ci-toolkit-build")["after_script"])
    for name in (".ci-toolkit-build", ".ci-toolkit-pipeline", ".ci-toolkit-promote"):
        assert resolve(jobs, name)["artifacts"]["reports"]["dotenv"] == "ci-toolkit.env"


def test_build_then_promote_jobs(runner: Runner, cleanup: list[str]) -> None:
    tag = f"{unique_repo('gitlab')}:{SHA[:8]}"
    cleanup.append(tag)
    build = runner.run(".ci-toolkit-build", {"INPUT_TAGS": tag, "INPUT_PUSH": "true", "INPUT_CACHE_ROOT": "../cache"})
    assert build.code == 0, build.output
    assert "section_start:" in build.output or "already installed" in build.output
    assert build.after_code == 0, build.after_output
    assert re.search(r"^\+ ci-toolkit --json .*sweep$", build.after_output, re.M), build.after_output
    assert list(runner.tmpdir.iterdir()) == [], "both shells remove their clone of the toolkit"
    report = runner.dotenv(".ci-toolkit-build")
    assert report["CI_TOOLKIT_DIGEST"] == registry_digest(tag)
    assert report["CI_TOOLKIT_IMAGE"] == tag
    metadata = json.loads(report["CI_TOOLKIT_METADATA"])
    assert metadata["digest"] == report["CI_TOOLKIT_DIGEST"], "the after_script sweep did not overwrite the outputs"

    # The promote job gets the build job's dotenv variables, as `needs:` hands them over.
    promote = runner.run(".ci-toolkit-promote", {"INPUT_PROMOTE_TAGS": "latest"}, inherited=report)
    assert promote.code == 0, promote.output
    assert registry_digest(tag.rsplit(":", 1)[0] + ":latest") == report["CI_TOOLKIT_DIGEST"]
    assert runner.dotenv(".ci-toolkit-promote")["CI_TOOLKIT_DIGEST"] == report["CI_TOOLKIT_DIGEST"]


def test_pipeline_job(runner: Runner, cleanup: list[str]) -> None:
    repo = unique_repo("gitlab-pipeline")
    (runner.project / "ci-toolkit.yaml").write_text(
        "build-registry: 127.0.0.1:5000\n"
        "insecure-registries: [127.0.0.1:5000, 127.0.0.1:5001, 127.0.0.1:5002]\n"
        "steps:\n"
        "  base:\n"
        "    build:\n"
        "      dockerfile: |\n"
        "        FROM {{ DOCKER_REGISTRY }}/library/busybox:latest\n"
        "        RUN echo base > /base.txt\n"
        "      platforms: [linux/amd64]\n"
        f"    push: {repo}\n"
    )
    job = runner.run(".ci-toolkit-pipeline", {"INPUT_PUSH": "true", "INPUT_CACHE_ROOT": "../cache"})
    assert job.code == 0, job.output
    report = runner.dotenv(".ci-toolkit-pipeline")
    build_tag = f"{SHA[:7]}-42"
    cleanup.append(f"{repo}:{build_tag}")
    assert report["CI_TOOLKIT_BASE_DIGEST"] == registry_digest(f"{repo}:{build_tag}")
    assert (runner.project / "artifacts.json").is_file()


def test_sweep_job(runner: Runner) -> None:
    job = runner.run(".ci-toolkit-sweep", {})
    assert job.code == 0, job.output
    assert re.search(r"^\+ ci-toolkit --json .*sweep --stale$", job.output, re.M), job.output
    assert job.after_code == 0


def test_a_planted_installer_at_the_old_shared_path_never_runs(runner: Runner, tmp_path: Path) -> None:
    """/tmp/ci-toolkit-$CI_JOB_ID was where the template looked first; job ids are guessable."""
    job_id = str(uuid.uuid4().int % 10**9)
    canary = tmp_path / "CANARY"
    with (
        planted_installer(Path(f"/tmp/ci-toolkit-{job_id}"), canary),
        planted_installer(runner.tmpdir / f"ci-toolkit-{job_id}", canary),
    ):
        job = runner.run(".ci-toolkit-sweep", {}, job_id=job_id)
        assert job.code == 0, job.output
        assert not canary.exists(), "a file that existed before the job ran"
    assert "ci-toolkit v1 at commit" in job.output


def test_a_ref_that_is_not_the_pinned_commit_fails_before_anything_runs(runner: Runner) -> None:
    runner.overrides["CI_TOOLKIT_COMMIT"] = "0" * 40
    job = runner.run(".ci-toolkit-sweep", {})
    assert job.code != 0
    assert f"not CI_TOOLKIT_COMMIT {'0' * 40}" in job.output
    assert "ci-toolkit --json" not in job.output
    assert list(runner.tmpdir.iterdir()) == []
