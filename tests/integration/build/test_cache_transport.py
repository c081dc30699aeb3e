"""The cache entry carried by a CI cache service, the way one does it: after the build the
entry directory is archived, the runner (engine and disk) goes away, the next job restores the
archive and builds. Run against an engine of your own (the test wipes it); CI runs it serially."""

from __future__ import annotations

import os
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

from ci_toolkit.cache import store as cache_store

from .test_build_cache import clean_env, engine_wipe, result_of, toolkit

DOCKERFILE = """\
ARG DOCKER_REGISTRY=docker.io
FROM ${DOCKER_REGISTRY}/library/busybox
RUN head -c 3000000 /dev/urandom > /base
ARG N=0
RUN head -c 500000 /dev/urandom > /changing && echo $N > /n
"""


def _build(ctx: Path, root: Path, key: str, n: int) -> dict[str, object]:
    env = clean_env(CI_TOOLKIT_CACHE_TRANSPORT="actions-cache")
    args = ["build", "--json", "--cache-root", str(root), "--cache-key", key, "--build-arg", f"N={n}"]
    return result_of(toolkit([*args, "--extra-args", "--output type=cacheonly", "."], env, ctx))


def _round_trip(root: Path, key: str, archive: Path) -> int:
    """Save (tar the entry), lose the runner (engine + cache root), restore (untar)."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root / key, arcname=key)
    size = archive.stat().st_size
    engine_wipe([])
    subprocess.run(["rm", "-rf", str(root)], check=True)
    root.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="tar")
    return size


def test_restored_entry_builds_warm_and_its_archive_does_not_grow(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    root, key = tmp_path / "root", f"transport-{uuid.uuid4().hex[:8]}"
    first = _build(ctx, root, key, 0)
    cache = first["cache"]
    assert isinstance(cache, dict) and cache["transport"] == "actions-cache" and cache["export"] == "committed"
    assert [p.name for p in (root / key).glob("gen-*")] == [cache["generation"]], "one generation travels"

    sizes = [_round_trip(root, key, tmp_path / "0.tgz")]
    warm = _build(ctx, root, key, 0)
    assert warm["cache_hits"] == warm["cache_steps"] - 1 == 2, "both RUN steps come from the restored entry"
    warm_cache = warm["cache"]
    assert isinstance(warm_cache, dict) and warm_cache["export"] == "unchanged", "nothing new: nothing to save"

    for n in range(1, 11):
        changed = _build(ctx, root, key, n)
        changed_cache = changed["cache"]
        assert isinstance(changed_cache, dict) and changed_cache["export"] == "committed"
        assert changed["cache_hits"] == 1, "the unchanged base layer came from the restored entry"
        assert len(list((root / key).glob("gen-*"))) == 1
        sizes.append(_round_trip(root, key, tmp_path / f"{n}.tgz"))
    assert sizes[-1] <= 1.5 * sizes[1], sizes
    current = cache_store.current_generation(root / key)
    assert current is not None and cache_store.verify_layout(current)


def test_the_action_carries_the_cache_through_the_actions_cache(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Two jobs on fresh GitHub-hosted runners (new engine, new disk) through action.yml: the
    second restores the first one's entry and builds warm; it saves nothing (unchanged)."""
    from tests.integration.ci.test_action_support import copy_checkout, run_action, shared_venv_root

    action_path = copy_checkout(tmp_path / "action")
    tool_cache = shared_venv_root(tmp_path_factory).parent
    service = tmp_path / "actions-cache"
    runs = []
    for job in range(2):
        engine_wipe([])
        workspace = tmp_path / f"job{job}" / "workspace"
        workspace.mkdir(parents=True)
        (workspace / "Dockerfile").write_text(DOCKERFILE)
        inputs = {
            "context": ".",
            "cache-key": "hosted",
            "extra-args": "--output type=cacheonly",
            "cache-root": str(workspace.parent / "cache"),  # the runner's disk: new each job
        }
        runs.append(
            run_action(
                action_path,
                inputs,
                workspace=workspace,
                tool_cache=tool_cache,
                extra_env={"RUNNER_ENVIRONMENT": "github-hosted", "DOCKER_HOST": os.environ.get("DOCKER_HOST", "")},
                actions_cache=service,
            )
        )
    first, second = runs
    assert first.code == 0, first.log
    assert first.outputs["cache-hits"] == "0" and first.outputs["cache-export"] == "committed"
    saved = sorted(p.name for p in service.iterdir())
    assert len(saved) == 1 and saved[0].startswith("ci-toolkit-hosted-gen-"), saved
    assert second.code == 0, second.log
    assert second.outputs["cache-hits"] == "2", "both RUN steps came from the restored entry"
    assert second.outputs["cache-export"] == "unchanged"
    assert sorted(p.name for p in service.iterdir()) == saved, "an unchanged build saves nothing"
    assert "transport actions-cache: ci-toolkit-hosted-gen-" in second.summary
