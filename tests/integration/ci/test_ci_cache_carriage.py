"""The CI's own cache carries the build cache on runners that keep no disk: the GitLab build
component's `cache:` and the Cirrus example's hosted task, each run as its runner runs it,
twice, on a fresh runner each time (a new checkout, no cache root, an engine with no build
cache): the second job restores what the first saved and builds warm.

These tests wipe the engine's build cache: run them against an engine of your own
(DOCKER_HOST=unix:///run/ci-toolkit-engines/NAME/docker.sock); CI runs them serially. (The
Action's Actions-cache carriage is in tests/integration/build/test_cache_transport.py.)"""

from __future__ import annotations

import shutil
import tarfile
import uuid
from pathlib import Path

import pytest
import yaml

from tests.integration.build.test_build_cache import engine_wipe
from tests.integration.build.test_cache_transport import DOCKERFILE
from tests.integration.ci.test_action_support import (
    make_toolkit_repo,
    parse_dotenv,
    remove_local_images,
    run_checked,
    unique_repo,
)
from tests.integration.ci.test_cirrus import CIRRUS, run_task, task_env
from tests.integration.ci.test_gitlab_components import Runner, wheels  # noqa: F401 - wheels is a fixture


def _checkout(dest: Path) -> Path:
    """A fresh clone of the project: a Dockerfile whose two RUN steps a warm build takes from
    the cache, and .git as a runner's checkout has."""
    dest.mkdir(parents=True)
    (dest / "Dockerfile").write_text(DOCKERFILE)
    run_checked(["git", "init", "--quiet", str(dest)])
    return dest


def _generations(archive: Path) -> set[str]:
    with tarfile.open(archive) as tar:
        return {part for name in tar.getnames() for part in Path(name).parts if part.startswith("gen-")}


def test_gitlab_cache_carries_the_build_cache_between_fresh_runners(
    wheels: Path,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    service = tmp_path / "gitlab-cache"
    inputs = {"cache-key": f"carry-{uuid.uuid4().hex[:8]}", "extra-args": "--output type=cacheonly"}
    reports = []
    for job in range(2):
        engine_wipe([])
        runner = Runner(wheels, _checkout(tmp_path / f"job{job}" / "project"), tmp_path / f"job{job}" / "tmp")
        runner.tmp.mkdir()
        runner.cache_service = service
        run = runner.run("build", inputs)
        assert run.code == 0, run.output
        reports.append(runner.dotenv())
    first, second = reports
    assert first["CI_TOOLKIT_CACHE_TRANSPORT"] == "gitlab-cache"
    assert first["CI_TOOLKIT_CACHE_EXPORT"] == "committed" and first["CI_TOOLKIT_CACHE_HITS"] == "0"
    assert second["CI_TOOLKIT_CACHE_HITS"] == "2", "both RUN steps came from the restored cache"
    assert second["CI_TOOLKIT_CACHE_EXPORT"] == "unchanged"
    # One GitLab cache entry per cache key, holding the cache root and exactly one generation.
    (archive,) = service.glob(f"ci-toolkit-ci-toolkit-build-{inputs['cache-key']}.tar")
    assert _generations(archive) == {first["CI_TOOLKIT_CACHE_GENERATION"]}


def test_cirrus_cache_carries_the_build_cache_between_fresh_containers(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data = yaml.safe_load(CIRRUS.read_text())
    task = data["hosted_image_task"]
    toolkit = make_toolkit_repo(tmp_path / "toolkit")
    service, tag = tmp_path / "cirrus-cache", f"{unique_repo('cirrus-hosted')}:1"
    uploads, reports = [], []
    try:
        for job in range(2):
            engine_wipe([tag])
            workdir = _checkout(tmp_path / f"task{job}" / "work")
            jobtmp, cirrus_env = tmp_path / f"task{job}" / "tmp", tmp_path / f"task{job}" / "cirrus-env"
            jobtmp.mkdir()
            task_id = str(uuid.uuid4().int % 10**12)
            env = task_env(
                data, task, toolkit, workdir, jobtmp, cirrus_env, task_id, tmp_path_factory, {"INPUT_TAGS": tag}
            )
            code, output = run_task(task, env, workdir, cirrus_env, caches=service)
            assert code == 0, output
            reports.append(parse_dotenv(workdir / "ci-toolkit.env"))
            uploads.append({p.name: p.stat().st_mtime_ns for p in service.iterdir()})
            shutil.rmtree(jobtmp, ignore_errors=True)
    finally:
        remove_local_images([tag])
    first, second = reports
    assert first["CI_TOOLKIT_CACHE_TRANSPORT"] == "cirrus-cache"
    assert first["CI_TOOLKIT_CACHE_EXPORT"] == "committed" and first["CI_TOOLKIT_CACHE_HITS"] == "0"
    assert second["CI_TOOLKIT_CACHE_HITS"] == "2", "both RUN steps came from the restored cache folder"
    assert second["CI_TOOLKIT_CACHE_EXPORT"] == "unchanged"
    # One cache per fingerprint (the key), one generation in it, not uploaded again unchanged.
    assert list(uploads[0]) == ["ci-toolkit-hello.tar"]
    assert _generations(service / "ci-toolkit-hello.tar") == {first["CI_TOOLKIT_CACHE_GENERATION"]}
    assert uploads[1] == uploads[0], "an unchanged build changes nothing Cirrus would upload again"
