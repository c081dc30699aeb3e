"""Authentication against a private `docker-registry` with htpasswd (bcrypt) auth: credentials
from the environment, from config.json (auths and a credential helper), and a wrong password
that fails with one line and never shows the password."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import run_cli, run_cli_process
from tests.integration.registry.test_promote_support import cli_env, private_registry, push_index, tag_digest

USER = "ci-robot"
PASSWORD = "Right-Pa55word-7f3a"
WRONG = "Wrong-Pa55word-9c1e"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """An htpasswd-protected registry with build-1 and build-2 of one image."""
    with private_registry(tmp_path_factory.mktemp("authreg"), htpasswd=(USER, PASSWORD)) as host:
        base = f"http://{host}"
        push_index(base, "team/app", "build-1", {"ci-toolkit.build-number": "1"}, auth=(USER, PASSWORD))
        push_index(base, "team/app", "build-2", {"ci-toolkit.build-number": "2"}, auth=(USER, PASSWORD))
        yield host, base


def _docker_config(tmp_path: Path, content: dict[str, object]) -> Path:
    cfg = tmp_path / "docker"
    cfg.mkdir(exist_ok=True)
    (cfg / "config.json").write_text(json.dumps(content))
    return cfg


def test_credentials_from_the_environment(registry: tuple[str, str], tmp_path: Path) -> None:
    host, base = registry
    env = cli_env(
        CI_TOOLKIT_REGISTRY_USER=USER, CI_TOOLKIT_REGISTRY_PASSWORD=PASSWORD, DOCKER_CONFIG=str(tmp_path / "none")
    )
    result = run_cli(["promote", f"{host}/team/app:build-1", "--tag", "env-tag"], env=env)
    assert result.code == 0, result.err
    assert tag_digest(base, "team/app", "env-tag", auth=(USER, PASSWORD)) == tag_digest(
        base, "team/app", "build-1", auth=(USER, PASSWORD)
    )
    assert PASSWORD not in result.out + result.err


def test_credentials_from_docker_config_json(registry: tuple[str, str], tmp_path: Path) -> None:
    host, base = registry
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    cfg = _docker_config(tmp_path, {"auths": {host: {"auth": auth}}})
    result = run_cli(["promote", f"{host}/team/app:build-2", "--tag", "cfg-tag"], env=cli_env(DOCKER_CONFIG=str(cfg)))
    assert result.code == 0, result.err
    assert tag_digest(base, "team/app", "cfg-tag", auth=(USER, PASSWORD)) == tag_digest(
        base, "team/app", "build-2", auth=(USER, PASSWORD)
    )


@pytest.mark.parametrize("key", ["credHelpers", "credsStore"])
def test_credentials_from_a_credential_helper(registry: tuple[str, str], tmp_path: Path, key: str) -> None:
    """credHelpers / credsStore name `docker-credential-<name>` on PATH, run through the Docker SDK."""
    host, base = registry
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-citest"
    secret = json.dumps({"ServerURL": host, "Username": USER, "Secret": PASSWORD})
    helper.write_text(f"#!/bin/sh\nread server\n[ \"$server\" = '{host}' ] || exit 1\necho '{secret}'\n")
    helper.chmod(0o755)
    cfg = _docker_config(
        tmp_path, {"credHelpers": {host: "citest"}} if key == "credHelpers" else {"credsStore": "citest"}
    )
    env = cli_env(DOCKER_CONFIG=str(cfg), PATH=f"{bin_dir}:{os.environ['PATH']}")
    result = run_cli_process(["promote", f"{host}/team/app:build-2", "--tag", f"helper-{key.lower()}"], env=env)
    assert result.code == 0, result.err
    assert tag_digest(base, "team/app", f"helper-{key.lower()}", auth=(USER, PASSWORD)) is not None
    assert PASSWORD not in result.out + result.err


@pytest.mark.parametrize("source", ["env", "config"])
def test_wrong_password_is_one_line_exit_1_and_never_printed(
    registry: tuple[str, str], tmp_path: Path, source: str
) -> None:
    host, base = registry
    before = tag_digest(base, "team/app", "latest", auth=(USER, PASSWORD))
    if source == "env":
        env = cli_env(CI_TOOLKIT_REGISTRY_USER=USER, CI_TOOLKIT_REGISTRY_PASSWORD=WRONG)
    else:
        auth = base64.b64encode(f"{USER}:{WRONG}".encode()).decode()
        env = cli_env(DOCKER_CONFIG=str(_docker_config(tmp_path, {"auths": {host: {"auth": auth}}})))
    result = run_cli_process(["promote", f"{host}/team/app:build-2", "--tag", "latest", "--json"], env=env)
    assert result.code == 1
    assert len(result.error_lines) == 1
    assert result.error_lines[0].startswith(f"error: authentication failed for {host}")
    assert WRONG not in result.out + result.err
    assert "Traceback" not in result.err
    assert tag_digest(base, "team/app", "latest", auth=(USER, PASSWORD)) == before


def test_no_credentials_is_an_auth_failure(registry: tuple[str, str], tmp_path: Path) -> None:
    host, _ = registry
    result = run_cli(
        ["promote", f"{host}/team/app:build-2", "--tag", "latest"], env=cli_env(DOCKER_CONFIG=str(tmp_path))
    )
    assert result.code == 1
    assert result.error_lines == [
        f"error: authentication failed for {host} (no credentials); "
        "check CI_TOOLKIT_REGISTRY_USER/PASSWORD or docker login"
    ]
