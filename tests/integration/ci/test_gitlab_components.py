"""templates/<name>/template.yml as GitLab CI/CD components: rendered with GitLab's input rules
(component_support), then run as a runner runs the job (variables expanded, before_script +
script in one shell, after_script in another, the dotenv report handed on) against the test
bed. The job installs `ci-toolkit==<version input>` with pip; PyPI has no such release in a
test, so a wheel built from this tree, tagged with that version, is offered through
PIP_FIND_LINKS (a project CI/CD variable, as a mirror would be configured)."""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.integration.ci.component_support import ComponentError, load, render
from tests.integration.ci.test_action_support import (
    REPO,
    JobRun,
    base_env,
    build_dist,
    expand_variables,
    parse_dotenv,
    registry_digest,
    run_checked,
    run_lines,
    tagged_checkout,
    unique_repo,
)

COMPONENTS = ("build", "pipeline", "promote", "sweep")
SHA = "89abcdef0123456789abcdef0123456789abcdef"


def template(name: str) -> Path:
    return REPO / "templates" / name / "template.yml"


def default_version() -> str:
    spec, _ = load(template("build"))
    return str(spec["inputs"]["version"]["default"])


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tagged_checkout(tmp_path_factory.mktemp("component-src"), default_version())
    out = tmp_path_factory.mktemp("wheels")
    build_dist(source, out)
    return out


class Runner:
    def __init__(self, wheels: Path, project: Path, tmp: Path) -> None:
        self.project = project
        self.tmp = tmp
        self.pipeline_id = str(uuid.uuid4().int % 10**8)
        # Project CI/CD variables: they win over the YAML's.
        self.overrides = {"PIP_FIND_LINKS": str(wheels)}
        # GitLab's cache server (a tar per cache key), when a test follows a job's `cache:`.
        self.cache_service: Path | None = None

    def run(self, component: str, inputs: Mapping[str, Any], inherited: Mapping[str, str] | None = None) -> JobRun:
        jobs = render(template(component), inputs)
        assert len(jobs) == 1, jobs
        (job,) = jobs.values()
        job_id = str(uuid.uuid4().int % 10**9)
        env = base_env(
            CI="true",
            GITLAB_CI="true",
            CI_JOB_ID=job_id,
            CI_PIPELINE_ID=self.pipeline_id,
            CI_PIPELINE_IID="42",
            CI_COMMIT_SHA=SHA,
            CI_COMMIT_SHORT_SHA=SHA[:8],
            CI_COMMIT_BRANCH="main",
            CI_DEFAULT_BRANCH="main",
            CI_PROJECT_DIR=str(self.project),
            TMPDIR=str(self.tmp),
            **(inherited or {}),
        )
        for key, value in (job.get("variables") or {}).items():
            env[key] = expand_variables(str(value), env)
        env.update(self.overrides)
        self._cache(job, env, save=False)
        code, output = run_lines([*job.get("before_script", []), *job["script"]], env, self.project)
        after_code, after_output = run_lines(job.get("after_script", []), env, self.project)
        if code == 0:
            self._cache(job, env, save=True)
        return JobRun(code, output, after_code, after_output, job_id)

    def _cache(self, job: Mapping[str, Any], env: Mapping[str, str], *, save: bool) -> None:
        """`cache:` as the runner handles it: each entry's key (variables expanded) restored
        into the project before before_script, its `paths` archived after after_script when
        the job succeeded (`when: on_success`)."""
        if self.cache_service is None:
            return
        self.cache_service.mkdir(exist_ok=True)
        for entry in job.get("cache") or []:
            archive = self.cache_service / (expand_variables(str(entry["key"]), env) + ".tar")
            if save:
                paths = [p for p in entry["paths"] if (self.project / p).exists()]
                if paths:  # GitLab warns and saves nothing when no path matched
                    run_checked(["tar", "-cf", str(archive), "-C", str(self.project), *paths])
            elif archive.is_file():
                run_checked(["tar", "-xf", str(archive), "-C", str(self.project)])

    def dotenv(self) -> dict[str, str]:
        path = self.project / "ci-toolkit.env"
        values = parse_dotenv(path)
        path.unlink()
        return values


@pytest.fixture
def runner(wheels: Path, tmp_path: Path) -> Runner:
    project = tmp_path / "project"
    shutil.copytree(REPO / "examples" / "hello", project)
    run_checked(["git", "init", "--quiet", str(project)])  # a runner's checkout has .git
    tmp = tmp_path / "runner-tmp"
    tmp.mkdir()
    return Runner(wheels, project, tmp)


def test_every_component_declares_typed_described_inputs_and_uses_them() -> None:
    for name in COMPONENTS:
        spec, _ = load(template(name))
        text = template(name).read_text()
        used = set(re.findall(r"\$\[\[\s*inputs\.([\w-]+)\s*\]\]", text))
        assert used == set(spec["inputs"]), name
        for key, rule in spec["inputs"].items():
            assert rule.get("description") and "default" in rule, (name, key)
        jobs = render(template(name))
        assert list(jobs) == [f"ci-toolkit-{name}"]
        (job,) = jobs.values()
        assert "git clone" not in text and "ci-toolkit==$CI_TOOLKIT_VERSION" in text
        assert job["variables"]["CI_TOOLKIT_VERSION"] == default_version()


def test_inputs_follow_gitlab_rules() -> None:
    jobs = render(template("build"), {"job-name": "image", "push": "true", "tags": "r/a:1"})
    assert jobs["image"]["variables"]["INPUT_PUSH"] == "true"
    assert jobs["image"]["variables"]["INPUT_TAGS"] == "r/a:1"
    for bad, message in (
        ({"pushh": True}, "unknown input name provided: pushh"),
        ({"push": True}, "`push` input: provided value is not a string"),
        ({"push": "yes"}, "`push` input: `yes` cannot be used because it is not in the list of options"),
        ({"version": "latest"}, "does not match required RegEx"),
        ({"cache-backend": "s3"}, "not in the list of options"),
    ):
        with pytest.raises(ComponentError, match=re.escape(message)):
            render(template("build"), bad)


def test_build_then_promote_components(runner: Runner, cleanup: list[str]) -> None:
    tag = f"{unique_repo('gitlab-component')}:{SHA[:8]}"
    cleanup.append(tag)
    build = runner.run("build", {"tags": tag, "push": "true", "cache-root": "../cache"})
    assert build.code == 0, build.output
    assert f"ci-toolkit {default_version()}" in build.output, "the pinned release is what runs"
    assert build.after_code == 0, build.after_output
    assert re.search(r"^\+ ci-toolkit --json .*sweep$", build.after_output, re.M), build.after_output
    assert not list(runner.tmp.iterdir()), "each shell removes the venv it created"
    report = runner.dotenv()
    assert report["CI_TOOLKIT_DIGEST"] == registry_digest(tag)
    assert report["CI_TOOLKIT_IMAGE"] == tag
    assert json.loads(report["CI_TOOLKIT_METADATA"])["digest"] == report["CI_TOOLKIT_DIGEST"]

    promote = runner.run("promote", {"promote-tags": "latest"}, inherited=report)
    assert promote.code == 0, promote.output
    assert registry_digest(tag.rsplit(":", 1)[0] + ":latest") == report["CI_TOOLKIT_DIGEST"]


def test_sweep_component(runner: Runner) -> None:
    job = runner.run("sweep", {"job-name": "cleanup"})
    assert job.code == 0, job.output
    assert re.search(r"^\+ ci-toolkit --json .*sweep --stale$", job.output, re.M), job.output


def test_job_never_runs_a_file_that_was_there_before(runner: Runner, tmp_path: Path, cleanup: list[str]) -> None:
    """Canary: a `ci-toolkit` first on PATH and a complete-looking ci-toolkit-* venv in the
    job's TMPDIR, planted before the job, are never executed, neither by the job nor by its
    after_script (which installs afresh in its own shell)."""
    canary = tmp_path / "canary"
    evil = tmp_path / "evil-bin"
    evil.mkdir()
    planted = runner.tmp / "ci-toolkit-planted"
    (planted / "bin").mkdir(parents=True)
    for script in (evil / "ci-toolkit", planted / "bin" / "python", planted / "bin" / "ci-toolkit"):
        script.write_text(f"#!/bin/sh\necho ran >>{canary}\n")
        script.chmod(0o755)
    runner.overrides["PATH"] = f"{evil}{os.pathsep}{os.environ['PATH']}"
    tag = f"{unique_repo('gitlab-canary')}:1"
    cleanup.append(tag)
    job = runner.run("build", {"tags": tag})
    assert job.code == 0, job.output
    assert job.after_code == 0, job.after_output
    assert re.search(r"^\+ ci-toolkit --json .*sweep$", job.after_output, re.M), job.after_output
    assert not canary.exists(), canary.read_text()
    assert [p.name for p in runner.tmp.iterdir()] == ["ci-toolkit-planted"]
