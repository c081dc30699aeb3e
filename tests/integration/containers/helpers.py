"""Shared fixtures for the container tests (run, signals, sweep): tiny service images built
from busybox under unique tags, resource queries by label, and a signalable CLI process."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import docker

from tests.helpers import REPO

# A service whose first exposed TCP port is 8080 (9090/udp must be ignored); it publishes
# its environment over HTTP so tests can see what a service received. VOLUME /data makes the
# toolkit create a labelled volume for it.
HTTP_SERVICE = """FROM busybox
EXPOSE 9090/udp 8080
VOLUME /data
CMD ["sh", "-c", "mkdir -p /www && env > /www/env.txt && exec httpd -f -p 8080 -h /www"]
"""
# Exposes a port it never opens.
SILENT_SERVICE = """FROM busybox
EXPOSE 8080
CMD ["sleep", "3600"]
"""


def client() -> Any:
    return docker.from_env(timeout=120)


@contextmanager
def built_image(dockerfile: str) -> Iterator[str]:
    tag = f"ci-toolkit-test-{uuid.uuid4().hex[:10]}:latest"
    c = client()
    c.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, forcerm=True)
    try:
        yield tag
    finally:
        c.images.remove(tag, force=True)
        c.close()


def resources(*label_filters: str) -> dict[str, list[str]]:
    """Names of containers, networks and volumes carrying all the given labels."""
    api = client().api
    filters = {"label": list(label_filters)}
    return {
        "containers": sorted(c["Names"][0].lstrip("/") for c in api.containers(all=True, filters=filters)),
        "networks": sorted(n["Name"] for n in api.networks(filters=filters)),
        "volumes": sorted(v["Name"] for v in (api.volumes(filters=filters).get("Volumes") or [])),
    }


def nothing(found: Mapping[str, list[str]]) -> bool:
    return not any(found.values())


def force_remove(*label_filters: str) -> None:
    """Test teardown: remove whatever a failed test left with these labels."""
    api = client().api
    filters = {"label": list(label_filters)}
    for c in api.containers(all=True, filters=filters):
        api.remove_container(c["Id"], force=True, v=True)
    for n in api.networks(filters=filters):
        api.remove_network(n["Id"])
    for v in api.volumes(filters=filters).get("Volumes") or []:
        api.remove_volume(v["Name"], force=True)


def start_cli(args: Sequence[str], env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ci_toolkit", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=REPO,
    )


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)
