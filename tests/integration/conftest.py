"""Integration tests run against the test bed (scripts/bootstrap). A missing engine is a
failure, never a skip: CI must not go green on a machine that tested nothing."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

PUSH_REGISTRY = "127.0.0.1:5000"
HUB_REGISTRY = "127.0.0.1:5001"
MIRROR_REGISTRY = "127.0.0.1:5002"

_checked: dict[str, str] = {}


def _engine_problem() -> str:
    if "engine" not in _checked:
        try:
            out = subprocess.run(
                ["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True, timeout=30
            )
            _checked["engine"] = "" if out.returncode == 0 else (out.stderr.strip().splitlines() or ["no output"])[-1]
        except (OSError, subprocess.TimeoutExpired) as exc:
            _checked["engine"] = str(exc)
    return _checked["engine"]


@pytest.fixture(autouse=True)
def _test_bed_required() -> Iterator[None]:
    problem = _engine_problem()
    if problem:
        pytest.fail(f"the Docker engine is not available ({problem}): run scripts/bootstrap", pytrace=False)
    yield


@pytest.fixture(scope="session")
def http_image() -> Iterator[str]:
    """A service image that opens its exposed port: shared by the run and signal tests."""
    from tests.integration.containers.helpers import HTTP_SERVICE, built_image

    with built_image(HTTP_SERVICE) as tag:
        yield tag
