"""examples/cirrus/.cirrus.yml, run as a Cirrus persistent worker runs its task: env merged
and expanded, each `*_script` in its own shell, in order, stopping at the first failure,
then the `always:` scripts; against the test bed, with the registry swapped for the local one."""

from __future__ import annotations

import hashlib
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
    repo = unique_repo("cirrus")
    # What a user's own settings would say: their registry and cache directory; our toolkit.
    settings = {"INPUT_TAGS": f"{repo}:{SHA[:12]}", "INPUT_CACHE_ROOT": str(tmp_path / "cache")}
    env = task_env(data, task, toolkit, workdir, jobtmp, cirrus_env, task_id, tmp_path_factory, settings)
    # A local user plants scripts where the file used to look first: none of them may run.
    with (
        planted_installer(Path(f"/tmp/ci-toolkit-{task_id}"), canary),
        planted_installer(jobtmp / f"ci-toolkit-{task_id}", canary),
    ):
        try:
            code, output = run_task(task, env, workdir, cirrus_env)
            assert code == 0, output
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


def task_env(
    data: dict[str, Any],
    task: dict[str, Any],
    toolkit: Path,
    workdir: Path,
    jobtmp: Path,
    cirrus_env: Path,
    task_id: str,
    factory: pytest.TempPathFactory,
    settings: dict[str, str],
) -> dict[str, str]:
    """What Cirrus gives the task's scripts: its variables, then the file's and the task's
    `env:` expanded in order, then the user's own settings (here: the toolkit under test)."""
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
    env.update(
        CI_TOOLKIT_REPO=toolkit.as_uri(),
        CI_TOOLKIT_COMMIT=head_commit(toolkit),
        CI_TOOLKIT_VENV_ROOT=str(shared_venv_root(factory)),
        **settings,
    )
    return env


def run_task(
    task: dict[str, Any], env: dict[str, str], workdir: Path, cirrus_env: Path, caches: Path | None = None
) -> tuple[int, str]:
    """A task's instructions in order: each `*_script` in its own shell, stopping at the first
    failure (later scripts see what it wrote to $CIRRUS_ENV). With `caches` (the cache
    service, a tar per fingerprint), each `*_cache` folder is restored where the instruction
    stands and, once every script succeeded, uploaded when it is new or (reupload_on_changes)
    its content changed."""
    restored: list[tuple[Path, Path, str]] = []
    for name, value in task.items():
        if name.endswith("_cache") and caches is not None:
            restored.append(_restore_cache(value, env, workdir, caches))
        elif name.endswith("_script"):
            code, output = run_lines(value if isinstance(value, list) else [value], env, workdir)
            if code != 0:
                return code, f"{name}:\n{output}"
            env.update(_cirrus_env(cirrus_env))
    for folder, archive, before in restored:
        if folder.exists() and _content(folder) != before:
            run_lines([f"tar -cf '{archive}' -C '{folder.parent}' '{folder.name}'"], env, workdir)
    return 0, ""


def _restore_cache(cache: dict[str, Any], env: dict[str, str], workdir: Path, caches: Path) -> tuple[Path, Path, str]:
    script = cache["fingerprint_script"]
    code, fingerprint = run_lines(script if isinstance(script, list) else [script], env, workdir)
    assert code == 0, fingerprint
    assert cache.get("reupload_on_changes"), "a fixed fingerprint without reupload_on_changes never saves a change"
    folder = workdir / expand_variables(cache["folder"], env)
    archive = caches / (re.sub(r"[^\w.-]", "_", fingerprint.strip()) + ".tar")
    caches.mkdir(exist_ok=True)
    if archive.is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        run_lines([f"tar -xf '{archive}' -C '{folder.parent}'"], env, workdir)
    return folder, archive, _content(folder)


def _content(folder: Path) -> str:
    """What Cirrus compares to decide a re-upload: the files (and links) and their bytes."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")) if folder.exists() else []:
        name = str(path.relative_to(folder)).encode()
        if path.is_symlink():
            digest.update(name + b"->" + str(path.readlink()).encode())
        elif path.is_file():
            digest.update(name + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _cirrus_env(path: Path) -> dict[str, str]:
    """$CIRRUS_ENV: KEY=VALUE lines a script writes for the task's later scripts."""
    lines = path.read_text().splitlines() if path.exists() else []
    return dict(line.split("=", 1) for line in lines if "=" in line)
