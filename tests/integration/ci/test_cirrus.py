"""examples/cirrus/.cirrus.yml, run as a Cirrus persistent worker runs its task: env merged
and expanded, each `*_script` in its own shell, in order, stopping at the first failure,
then the `always:` scripts; against the test bed, with the registry swapped for the local one."""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.ci.test_action_support import (
    REPO,
    base_env,
    expand_variables,
    head_commit,
    make_toolkit_repo,
    planted_installer,
    registry_digest,
    remove_local_images,
    run_lines,
    shared_venv_root,
    unique_repo,
)

CIRRUS = REPO / "examples" / "cirrus" / ".cirrus.yml"
SHA = "fedcba9876543210fedcba9876543210fedcba98"


def _scripts(section: dict[str, Any]) -> list[tuple[str, list[str]]]:
    return [(k, v if isinstance(v, list) else [v]) for k, v in section.items() if k.endswith("_script")]


def test_cirrus_task_builds_promotes_and_sweeps(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    data = yaml.safe_load(CIRRUS.read_text())
    task = data["image_task"]
    toolkit = make_toolkit_repo(tmp_path / "toolkit")
    workdir = tmp_path / "work"
    shutil.copytree(REPO / "examples" / "hello", workdir)
    task_id = str(uuid.uuid4().int % 10**12)
    jobtmp, cirrus_env, canary = tmp_path / "job-tmp", tmp_path / "cirrus-env", tmp_path / "CANARY"
    jobtmp.mkdir()
    env = base_env(
        CI="true",
        CIRRUS_CI="true",
        CIRRUS_TASK_ID=task_id,
        CIRRUS_BUILD_ID=str(uuid.uuid4().int % 10**12),
        CIRRUS_CHANGE_IN_REPO=SHA,
        CIRRUS_BRANCH="main",
        CIRRUS_WORKING_DIR=str(workdir),
        CIRRUS_ENV=str(cirrus_env),
        TMPDIR=str(jobtmp),
    )
    for key, value in {**data["env"], **task["env"]}.items():
        env[key] = expand_variables(str(value), env)
    repo = unique_repo("cirrus")
    # What a user's own settings would say: their registry and cache directory; our toolkit.
    env.update(
        CI_TOOLKIT_REPO=toolkit.as_uri(),
        CI_TOOLKIT_COMMIT=head_commit(toolkit),
        CI_TOOLKIT_VENV_ROOT=str(shared_venv_root(tmp_path_factory)),
        INPUT_TAGS=f"{repo}:{SHA[:12]}",
        INPUT_CACHE_ROOT=str(tmp_path / "cache"),
    )
    # A local user plants scripts where the file used to look first: none of them may run.
    with (
        planted_installer(Path(f"/tmp/ci-toolkit-{task_id}"), canary),
        planted_installer(jobtmp / f"ci-toolkit-{task_id}", canary),
    ):
        try:
            for name, lines in _scripts(task):
                code, output = run_lines(lines, env, workdir)
                assert code == 0, f"{name}:\n{output}"
                env.update(_cirrus_env(cirrus_env))
            always_code, always_output = run_lines(
                [ln for _, lines in _scripts(task["always"]) for ln in lines], env, workdir
            )
        finally:
            remove_local_images([f"{repo}:{SHA[:12]}"])
        assert not canary.exists(), "a file that existed before the task ran"
        assert [p.name for p in jobtmp.iterdir()] == [f"ci-toolkit-{task_id}"], "the clone is removed"
    assert always_code == 0, always_output
    digest = registry_digest(f"{repo}:{SHA[:12]}")
    assert registry_digest(f"{repo}:latest") == digest
    assert f"CI_TOOLKIT_DIGEST={digest}" in (workdir / "ci-toolkit.env").read_text()
    assert re.search(r"^\+ ci-toolkit --json .*sweep$", always_output, re.M), always_output


def _cirrus_env(path: Path) -> dict[str, str]:
    """$CIRRUS_ENV: KEY=VALUE lines a script writes for the task's later scripts."""
    lines = path.read_text().splitlines() if path.exists() else []
    return dict(line.split("=", 1) for line in lines if "=" in line)
