"""Settings cascade: defaults < global files < project file < .env < environment < command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ci_toolkit.core import config
from ci_toolkit.core.errors import ToolkitError
from tests.helpers import run_cli


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _load(tmp_path: Path, env: dict[str, str] | None = None, **kwargs: object) -> config.Loaded:
    base = {"HOME": str(tmp_path / "home")}
    return config.load({**base, **(env or {})}, cwd=tmp_path, global_files=[], **kwargs)  # type: ignore[arg-type]


def test_defaults_when_nothing_is_configured(tmp_path: Path) -> None:
    loaded = _load(tmp_path)
    assert loaded.settings.docker_registry == "docker.io"
    assert loaded.sources["docker-registry"] == "default"
    assert loaded.settings.cache_root == str(tmp_path / "home" / ".cache" / "ci-toolkit" / "buildx")


def test_cache_root_follows_xdg_cache_home(tmp_path: Path) -> None:
    loaded = _load(tmp_path, {"XDG_CACHE_HOME": "/xdg"})
    assert loaded.settings.cache_root == "/xdg/ci-toolkit/buildx"


def test_every_layer_overrides_the_one_below(tmp_path: Path) -> None:
    system = _write(tmp_path / "etc.yaml", "docker-registry: from-system\nbuilder: b-system\n")
    user = _write(tmp_path / "home" / ".ci-toolkit.yaml", "docker-registry: from-user\ncache-ref: r-user\n")
    _write(tmp_path / "ci-toolkit.yaml", "cache-ref: r-project\nlabel-prefix: p-project\n")
    _write(tmp_path / ".env", "CI_TOOLKIT_LABEL_PREFIX=p-dotenv\nCI_TOOLKIT_JOB_ID=j-dotenv\n")
    env = {"CI_TOOLKIT_JOB_ID": "j-env", "CI_TOOLKIT_PULL_POLICY": "never"}
    loaded = config.load(
        {"HOME": str(tmp_path / "home"), **env},
        cwd=tmp_path,
        global_files=[system, user],
        overrides=["pull-policy=always"],
    )
    s, src = loaded.settings, loaded.sources
    assert (s.builder, src["builder"]) == ("b-system", "global file")
    assert (s.docker_registry, src["docker-registry"]) == ("from-user", "global file")
    assert (s.cache_ref, src["cache-ref"]) == ("r-project", "project file")
    assert (s.label_prefix, src["label-prefix"]) == ("p-dotenv", ".env")
    assert (s.job_id, src["job-id"]) == ("j-env", "environment")
    assert (s.pull_policy, src["pull-policy"]) == ("always", "command line")


def test_global_config_variable_replaces_both_global_files(tmp_path: Path) -> None:
    _write(tmp_path / "home" / ".ci-toolkit.yaml", "builder: from-home\ncache-ref: from-home\n")
    only = _write(tmp_path / "only.yaml", "builder: from-override\n")
    loaded = config.load({"HOME": str(tmp_path / "home"), "CI_TOOLKIT_GLOBAL_CONFIG": str(only)}, cwd=tmp_path)
    assert loaded.settings.builder == "from-override"
    assert loaded.settings.cache_ref == ""


def test_user_global_file_is_read_from_home(tmp_path: Path) -> None:
    _write(tmp_path / "home" / ".ci-toolkit.yaml", "builder: from-home\n")
    loaded = config.load({"HOME": str(tmp_path / "home")}, cwd=tmp_path)
    assert loaded.settings.builder == "from-home"
    assert loaded.sources["builder"] == "global file"


def test_env_file_values_reach_the_job_environment_but_real_env_wins(tmp_path: Path) -> None:
    _write(tmp_path / "a.env", "CONTAINER_NAME=from-a\nOTHER=x\n")
    _write(tmp_path / "b.env", "CONTAINER_NAME=from-b\n")
    loaded = _load(tmp_path, {"OTHER": "real"}, env_files=["a.env", "b.env"])
    assert loaded.env["CONTAINER_NAME"] == "from-b"
    assert loaded.env["OTHER"] == "real"


def test_typed_values_are_coerced(tmp_path: Path) -> None:
    env = {
        "CI_TOOLKIT_MIRROR_REQUIRED": "yes",
        "CI_TOOLKIT_INSECURE_REGISTRIES": "a:5000, b:5000",
        "CI_TOOLKIT_CONTAINER_LABELS": "team=build,tier=ci",
        "CI_TOOLKIT_MIRRORS": "{docker.io: [m1:5000, m2:5000]}",
    }
    s = _load(tmp_path, env).settings
    assert s.mirror_required is True
    assert s.insecure_registries == ["a:5000", "b:5000"]
    assert s.container_labels == {"team": "build", "tier": "ci"}
    assert s.mirrors == {"docker.io": ["m1:5000", "m2:5000"]}


def test_settings_are_frozen(tmp_path: Path) -> None:
    s = _load(tmp_path).settings
    with pytest.raises(AttributeError):
        s.builder = "x"  # type: ignore[misc]


def test_unknown_key_suggests_the_closest(tmp_path: Path) -> None:
    _write(tmp_path / "ci-toolkit.yaml", "docker-regsitry: x\n")
    with pytest.raises(ToolkitError) as info:
        _load(tmp_path)
    assert "did you mean 'docker-registry'" in info.value.message
    assert info.value.exit_code == 2


def test_config_show_lists_sources_and_masks_secrets(tmp_path: Path) -> None:
    _write(tmp_path / "ci-toolkit.yaml", "builder: proj\n")
    env = {"CI_TOOLKIT_REGISTRY_PASSWORD": "hunter2-secret", "CI_TOOLKIT_JOB_ID": "j1"}
    result = run_cli(["--json", "--set", "cache-ref=r", "config", "show"], env=env, cwd=tmp_path)
    assert result.code == 0, result.err
    rows = {r["key"]: r for r in json.loads(result.out)["settings"]}
    assert rows["builder"]["source"] == "project file"
    assert rows["job-id"]["source"] == "environment"
    assert rows["cache-ref"]["source"] == "command line"
    assert rows["docker-registry"]["source"] == "default"
    assert rows["registry-password"]["value"] == "***"
    assert "hunter2-secret" not in result.out + result.err
    human = run_cli(["config", "show"], env=env, cwd=tmp_path)
    assert "hunter2-secret" not in human.out + human.err
    assert "(project file)" in human.out


def test_global_options_work_after_the_command(tmp_path: Path) -> None:
    result = run_cli(["config", "show", "--json", "--set", "builder=late"], cwd=tmp_path)
    rows = {r["key"]: r for r in json.loads(result.out)["settings"]}
    assert rows["builder"]["value"] == "late"
