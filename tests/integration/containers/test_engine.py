"""The sweep's Engine API client against the real engine's unix socket: the SDK's filters,
its removal semantics (404 when gone, 409/403 while in use), and a socket that is not there."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from ci_toolkit.containers import engine
from tests.helpers import run_cli


def test_lists_by_label_and_removes_a_container_then_its_network() -> None:
    api = engine.connect({})
    assert api is not None
    tag = f"ci-toolkit-engine-test={uuid.uuid4().hex[:10]}"
    net = subprocess.run(
        ["docker", "network", "create", "--label", tag, f"ci-toolkit-engine-{uuid.uuid4().hex[:8]}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    cid = subprocess.run(
        ["docker", "run", "-d", "--label", tag, "--network", net, "busybox", "sleep", "120"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    try:
        [listed] = api.containers(all=True, filters={"label": [tag]})
        assert listed["Id"] == cid
        [(name, attached)] = listed["NetworkSettings"]["Networks"].items()
        assert attached["NetworkID"] == net
        assert api.networks(filters={"label": tag})[0]["Name"] == name
        assert [n["Id"] for n in api.networks(filters={"label": tag})] == [net]
        assert api.containers(all=True, filters={"label": [tag + "-other"]}) == []
        with pytest.raises(engine.EngineError) as in_use:
            api.remove_network(net)
        assert in_use.value.status_code in (403, 409)
        api.remove_container(cid, force=True, v=True)
        api.remove_network(net)
        with pytest.raises(engine.EngineError) as gone:
            api.remove_container(cid, force=True)
        assert gone.value.status_code == 404
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
        subprocess.run(["docker", "network", "rm", net], capture_output=True)


def test_a_missing_socket_is_exit_3_with_one_line_naming_it() -> None:
    result = run_cli(["sweep", "--job-id", "x"], env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert result.code == 3
    assert result.error_lines == [
        "error: sweep: listing resources: cannot reach the Docker engine "
        "(unix:///nonexistent/docker.sock: no such file or directory): start it or set DOCKER_HOST"
    ]


def test_other_engine_addresses_are_left_to_the_docker_sdk() -> None:
    assert engine.connect({"DOCKER_HOST": "tcp://127.0.0.1:2375"}) is None
    assert engine.connect({"DOCKER_HOST": "unix:///x.sock", "DOCKER_TLS_VERIFY": "1"}) is None
    api = engine.connect({"DOCKER_HOST": "unix:///run/x.sock"})
    assert api is not None and api.socket_path == "/run/x.sock"
