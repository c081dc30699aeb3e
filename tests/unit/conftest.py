"""Unit tests never reach Docker, the network or a subprocess: this guard makes them fail."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest


class ForbiddenInUnitTests(BaseException):
    """A BaseException, so the CLI's last-resort handler (which catches Exception) cannot
    turn a guard violation into an ordinary failed run."""


def _forbid(what: str) -> Any:
    def guard(*args: Any, **kwargs: Any) -> Any:
        raise ForbiddenInUnitTests(f"unit tests may not use {what}; move this test to tests/integration")

    return guard


@pytest.fixture(autouse=True)
def _no_engine_no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(subprocess, "Popen", _forbid("subprocess"))
    monkeypatch.setattr(socket.socket, "connect", _forbid("the network"))
    monkeypatch.setattr(socket, "create_connection", _forbid("the network"))
    try:
        import docker

        monkeypatch.setattr(docker, "from_env", _forbid("the Docker SDK"))
        monkeypatch.setattr(docker, "DockerClient", _forbid("the Docker SDK"))
    except ImportError:
        pass
    yield
