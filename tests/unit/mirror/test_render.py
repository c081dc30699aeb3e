from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import tomllib

from ci_toolkit.build.builder import BuilderRequest, config_hash, create_argv
from ci_toolkit.core.errors import EXIT_INPUT, ToolkitError
from ci_toolkit.core.settings import Settings
from ci_toolkit.mirror.render import render
from tests.helpers import run_cli

FULL = Settings(
    docker_registry="127.0.0.1:5002",
    mirrors={"docker.io": ["harbor.example.com/dockerhub-proxy"], "ghcr.io": ["ghcr-mirror.example.com"]},
    insecure_registries=["reg.lan:5000"],
    registry_ca={"myregistry.com": ["/etc/certs/myregistry.pem"]},
    registry_keypairs={"myregistry.com": ["/etc/certs/cert.pem:/etc/certs/key.pem"]},
    buildkit_max_parallelism=4,
)


def _toml(text: str) -> dict[str, Any]:
    return tomllib.loads(text)


def test_buildkitd_toml_parses_with_every_section() -> None:
    data = _toml(render("buildkitd", FULL).text)
    reg = data["registry"]
    assert reg["docker.io"]["mirrors"] == ["127.0.0.1:5002", "harbor.example.com/dockerhub-proxy"]
    assert reg["ghcr.io"]["mirrors"] == ["ghcr-mirror.example.com"]
    assert reg["127.0.0.1:5002"] == {"http": True, "insecure": True}
    assert reg["reg.lan:5000"] == {"insecure": True}
    assert reg["myregistry.com"]["ca"] == ["/etc/certs/myregistry.pem"]
    assert reg["myregistry.com"]["keypair"] == [{"key": "/etc/certs/key.pem", "cert": "/etc/certs/cert.pem"}]
    assert data["worker"]["oci"]["max-parallelism"] == 4
    assert "ghcr-mirror.example.com" not in reg


def test_buildkitd_toml_of_default_settings_is_empty_but_valid() -> None:
    assert _toml(render("buildkitd", Settings()).text) == {}


def test_bad_keypair_is_bad_input() -> None:
    with pytest.raises(ToolkitError) as info:
        render("buildkitd", Settings(registry_keypairs={"r.example": ["only-a-cert.pem"]}))
    assert info.value.exit_code == EXIT_INPUT


def test_hosts_toml_parses_and_orders_mirrors_before_the_server() -> None:
    data = _toml(render("containerd-hosts", FULL).text)
    assert data["server"] == "https://registry-1.docker.io"
    hosts = data["host"]
    assert list(hosts) == ["http://127.0.0.1:5002", "https://harbor.example.com/v2/dockerhub-proxy"]
    assert hosts["https://harbor.example.com/v2/dockerhub-proxy"]["override_path"] is True
    assert hosts["http://127.0.0.1:5002"]["capabilities"] == ["pull", "resolve"]
    ghcr = _toml(render("containerd-hosts", FULL, registry="ghcr.io").text)
    assert ghcr["server"] == "https://ghcr.io" and list(ghcr["host"]) == ["https://ghcr-mirror.example.com"]


def test_daemon_json_merge_keeps_unrelated_keys() -> None:
    existing = json.dumps({"debug": True, "features": {"containerd-snapshotter": True}, "insecure-registries": ["x:1"]})
    out = render("daemon-json", FULL, merge_text=existing)
    data = json.loads(out.text)
    assert data["debug"] is True and data["features"] == {"containerd-snapshotter": True}
    assert data["registry-mirrors"] == ["http://127.0.0.1:5002"]
    assert data["insecure-registries"] == ["x:1", "reg.lan:5000"]
    assert any("path prefix" in n for n in out.notes) and any("ghcr.io" in n for n in out.notes)


def test_daemon_json_merge_rejects_non_json() -> None:
    with pytest.raises(ToolkitError) as info:
        render("daemon-json", FULL, merge_text="{not json")
    assert info.value.exit_code == EXIT_INPUT


def test_cli_render_merge_writes_file(tmp_path: Path) -> None:
    daemon = tmp_path / "daemon.json"
    daemon.write_text('{"log-driver": "journald"}')
    out = tmp_path / "new.json"
    res = run_cli(
        ["mirror", "render", "--format", "daemon-json", "--merge", str(daemon), "-o", str(out)],
        env={"CI_TOOLKIT_DOCKER_REGISTRY": "127.0.0.1:5002"},
        cwd=tmp_path,
    )
    assert res.code == 0, res.err
    assert json.loads(out.read_text()) == {"log-driver": "journald", "registry-mirrors": ["http://127.0.0.1:5002"]}


def test_cli_rewrite_prints_mirrored_references(tmp_path: Path) -> None:
    res = run_cli(
        ["mirror", "rewrite", "busybox", "ruby:2.1", "registry.alloy-wp.com:4999/tutum/wordpress"],
        env={"CI_TOOLKIT_DOCKER_REGISTRY": "127.0.0.1:5002"},
        cwd=tmp_path,
    )
    assert res.code == 0, res.err
    assert res.out.splitlines() == [
        "127.0.0.1:5002/library/busybox:latest",
        "127.0.0.1:5002/library/ruby:2.1",
        "registry.alloy-wp.com:4999/tutum/wordpress:latest",
    ]


def test_cli_rewrite_invalid_reference_is_one_error_line(tmp_path: Path) -> None:
    res = run_cli(["mirror", "rewrite", "Ubuntu"], cwd=tmp_path)
    assert res.code == 2
    assert len(res.error_lines) == 1 and "lowercase" in res.error_lines[0]
    assert "Traceback" not in res.err


def test_builder_argv_per_driver(tmp_path: Path) -> None:
    cfg = tmp_path / "b.toml"
    container = create_argv(BuilderRequest(name="b", bootstrap=True), cfg)
    head = ["docker", "buildx", "create", "--name", "b", "--driver", "docker-container"]
    assert container == [*head, "--config", str(cfg), "--bootstrap"]
    remote = create_argv(BuilderRequest(name="r", driver="remote", endpoint="tcp://bk:1234"), cfg)
    assert "--config" not in remote and remote[-1] == "tcp://bk:1234"


def test_config_hash_changes_with_config_and_endpoint() -> None:
    req = BuilderRequest(name="b", driver="remote", endpoint="tcp://a:1")
    other = BuilderRequest(name="b", driver="remote", endpoint="tcp://b:1")
    assert config_hash(req, "x") == config_hash(req, "x")
    assert config_hash(req, "x") != config_hash(req, "y")
    assert config_hash(req, "x") != config_hash(other, "x")


def test_daemon_json_merge_keeps_the_files_own_mirrors_and_insecure_hosts() -> None:
    existing = {"registry-mirrors": ["https://theirs.example"], "insecure-registries": ["old:5000"], "x": {"y": 1}}
    none = json.loads(render("daemon-json", Settings(), merge_text=json.dumps(existing)).text)
    assert none == existing  # nothing configured: nothing of theirs is dropped
    ours = json.loads(render("daemon-json", FULL, merge_text=json.dumps(existing)).text)
    assert ours["registry-mirrors"] == ["http://127.0.0.1:5002", "https://theirs.example"]
    assert ours["insecure-registries"] == ["old:5000", "reg.lan:5000"] and ours["x"] == {"y": 1}


@pytest.mark.parametrize(
    "existing",
    [{"insecure-registries": "reg.lan:5000"}, {"registry-mirrors": "https://m"}, {"registry-mirrors": [1]}],
)
def test_daemon_json_merge_refuses_wrong_types(existing: dict[str, object], tmp_path: Path) -> None:
    daemon = tmp_path / "daemon.json"
    daemon.write_text(json.dumps(existing))
    res = run_cli(["mirror", "render", "--format", "daemon-json", "--merge", str(daemon)], cwd=tmp_path)
    assert res.code == 2 and len(res.error_lines) == 1 and "must be a list of strings" in res.err
