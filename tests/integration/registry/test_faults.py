"""Faults a real registry will not produce on demand, injected by a proxy in front of the test
bed's registry: 429 with Retry-After, 503, a connection reset, a slow response."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.helpers import run_cli
from tests.integration.conftest import PUSH_REGISTRY
from tests.integration.registry.test_promote_support import (
    Fault,
    cli_env,
    push_index,
    recording_proxy,
    tag_digest,
    unique,
)

BASE = f"http://{PUSH_REGISTRY}"


@pytest.fixture
def images() -> Iterator[tuple[str, str, str]]:
    """A repository whose latest is build 1, and build 2 ready to promote."""
    repo = unique("ci-toolkit-promote-faults")
    old = push_index(BASE, repo, "build-1", {"ci-toolkit.build-number": "1"})
    new = push_index(BASE, repo, "build-2", {"ci-toolkit.build-number": "2"})
    assert run_cli(["promote", f"{PUSH_REGISTRY}/{repo}:build-1", "--tag", "latest"], env=cli_env()).code == 0
    yield repo, old, new
    import requests

    for digest in (old, new):
        requests.delete(f"{BASE}/v2/{repo}/manifests/{digest}", timeout=30)


def test_promotion_succeeds_through_429_503_reset_and_slow_responses(images: tuple[str, str, str]) -> None:
    repo, _, new = images
    with recording_proxy(PUSH_REGISTRY) as (proxy, state):
        state.faults = [
            Fault("status", 429, retry_after="1"),
            Fault("reset"),
            Fault("slow", delay=3.0),
            Fault("status", 503, method="PUT"),
            Fault("reset", method="PUT"),
        ]
        started = time.monotonic()
        result = run_cli(["promote", f"{proxy}/{repo}:build-2", "--tag", "latest", "--timeout", "1"], env=cli_env())
        elapsed = time.monotonic() - started
        assert result.code == 0, result.err
        assert state.faults == []  # every fault was met
        assert [r[2] for r in state.log[:1]] == [429]
        assert any(r == ("PUT", f"/v2/{repo}/manifests/latest", 503) for r in state.log)
    assert elapsed >= 1.0  # Retry-After: 1 was waited for
    assert tag_digest(BASE, repo, "latest") == new


@pytest.mark.parametrize("fault", [Fault("status", 503, method="PUT"), Fault("reset", method="PUT")])
def test_persistent_faults_fail_with_one_line_and_leave_latest_alone(
    images: tuple[str, str, str], fault: Fault
) -> None:
    repo, old, _ = images
    with recording_proxy(PUSH_REGISTRY) as (proxy, state):
        state.persistent = fault
        result = run_cli(["promote", f"{proxy}/{repo}:build-2", "--tag", "latest", "--retries", "2"], env=cli_env())
        assert len(state.requests("PUT")) == 3
    assert result.code == 1
    assert len(result.error_lines) == 1
    expected = "HTTP 503" if fault.kind == "status" else "connection"
    assert "failed after 3 attempts" in result.error_lines[0] and expected in result.error_lines[0]
    assert tag_digest(BASE, repo, "latest") == old


def test_a_registry_that_is_down_fails_with_one_line() -> None:
    from tests.integration.registry.test_promote_support import free_port

    host = f"127.0.0.1:{free_port()}"
    result = run_cli(["promote", f"{host}/app:build-1", "--tag", "latest", "--retries", "1"], env=cli_env())
    assert result.code == 1
    assert result.error_lines == [
        f"error: {host}: get manifest app:build-1 failed after 2 attempts: connection refused"
    ]
