"""`cache-backend: gha`: the runtime token and cache URL in the job's environment reach buildx
and BuildKit, which export to and import from the Actions cache service with that token; the
token itself never appears in the toolkit's output. GitHub's service is out of reach here, so
a stub on loopback stands in for it (actions_cache_stub). Nothing is wiped: the shared engine
will do."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from .actions_cache_stub import API, CacheService, cache_service, runtime_token
from .test_build_cache import clean_env, result_of, toolkit

DOCKERFILE = """\
ARG DOCKER_REGISTRY=docker.io
FROM ${DOCKER_REGISTRY}/library/busybox
ARG N=0
RUN echo "$N" > /n
"""


def _build(ctx: Path, key: str, n: str, env: dict[str, str]) -> tuple[dict[str, object], str]:
    args = ["-v", "build", "--json", "--cache-backend", "gha", "--cache-key", key, "--build-arg", f"N={n}"]
    proc = toolkit([*args, "--extra-args", "--output type=cacheonly", "."], env, ctx)
    return result_of(proc), proc.stdout + proc.stderr


def _runtime(service: CacheService, token: str) -> dict[str, str]:
    """What the action's exposing step leaves for later steps (the runner's ACTIONS_* values)."""
    return {"ACTIONS_RUNTIME_TOKEN": token, "ACTIONS_CACHE_URL": service.url, "ACTIONS_RESULTS_URL": service.url}


def test_the_runtime_token_reaches_buildkit_and_never_the_log(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    key, n, token = f"gha-{uuid.uuid4().hex[:10]}", uuid.uuid4().hex, runtime_token()
    with cache_service() as service:
        first, first_log = _build(ctx, key, n, clean_env(**_runtime(service, token)))
        exported = service.committed_keys()
        seen_by_first = len(service.seen)
        second, second_log = _build(ctx, key, n, clean_env(**_runtime(service, token)))
    assert service.seen, "nothing reached the cache service: buildx never got the token and URL"
    api = [s for s in service.seen if s.path.startswith(API)]
    assert {s.authorization for s in api} == {f"Bearer {token}"}, "every API request carries the job's token"
    # The rest are downloads from an entry's archiveLocation (a signed URL on GitHub: no token).
    assert all(s.path.startswith("/download/") for s in service.seen if s not in api), service.seen
    # The toolkit's scope for the key names the index BuildKit exported, with the layer blobs.
    index = [k for k in exported if k.startswith(f"index-{key}-1-")]
    assert len(index) == 1, exported
    assert any(k.startswith("buildkit-blob-1-sha256:") for k in exported), exported
    # The next build imports that index: it looks it up and downloads it.
    imported = [s.path for s in service.seen[seen_by_first:] if s.path.startswith("/download/")]
    assert imported, "the second build never read the exported cache"
    assert first["cache_backend"] == second["cache_backend"] == "gha"
    for log in (first_log, second_log):
        assert "cache-backend gha:" not in log, "no warning when the variables are there"
        assert token not in log
        assert token.split(".")[1] not in log, "not even the token's claims"


def test_without_the_runtime_variables_nothing_reaches_the_service(tmp_path: Path) -> None:
    """The control: the same build with only the URL (no token) sends the service nothing,
    so the requests above came from the variables; buildx drops the cache without a word, so
    the toolkit says it once."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    with cache_service() as service:
        key, n = f"gha-{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
        result, log = _build(ctx, key, n, clean_env(ACTIONS_CACHE_URL=service.url))
    assert service.seen == []
    assert result["cache_backend"] == "gha"
    warnings = [line for line in log.splitlines() if "cache-backend gha" in line]
    assert len(warnings) == 1 and "buildx uses no cache" in warnings[0], "said once, not a silent no-cache build"


def test_the_action_exposes_the_runtime_to_buildx(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Through action.yml as the runner runs it: the runner gives ACTIONS_* only to JavaScript
    actions, the pinned exposing step exports them to later steps, and the toolkit's step
    hands them to buildx. The token shows only in the `::add-mask::` command the runner
    consumes (it then masks the value everywhere), never in a log line, output or summary."""
    from tests.integration.ci.test_action_support import copy_checkout, run_action, shared_venv_root

    action_path = copy_checkout(tmp_path / "action")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "Dockerfile").write_text(DOCKERFILE)
    key, token = f"gha-{uuid.uuid4().hex[:10]}", runtime_token()
    inputs = {
        "context": ".",
        "cache-backend": "gha",
        "cache-key": key,
        "build-args": f"N={uuid.uuid4().hex}",
        "extra-args": "--output type=cacheonly",
    }
    with cache_service() as service:
        run = run_action(
            action_path,
            inputs,
            workspace=workspace,
            tool_cache=shared_venv_root(tmp_path_factory).parent,
            extra_env={"DOCKER_HOST": os.environ.get("DOCKER_HOST", "")},
            runtime=_runtime(service, token),
        )
    assert run.code == 0, run.log
    api = [s for s in service.seen if s.path.startswith(API)]
    assert api, "nothing reached the cache service: the exposing step did not reach buildx"
    assert {s.authorization for s in api} == {f"Bearer {token}"}
    assert [k for k in service.committed_keys() if k.startswith(f"index-{key}-1-")], service.committed_keys()
    leaks = [line for line in run.log.splitlines() if token in line and line != f"::add-mask::{token}"]
    assert leaks == [], "the token in a log line"
    assert f"::add-mask::{token}" in run.log.splitlines(), "the runner is told to mask the token"
    assert token not in run.summary and not any(token in v for v in run.outputs.values())
