"""The project file is a Jinja2 template: context variables and StrictUndefined errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_toolkit.core import config
from ci_toolkit.core.errors import ToolkitError

GITHUB = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567",
    "GITHUB_REF": "refs/heads/main",
    "GITHUB_REF_NAME": "main",
    "GITHUB_RUN_NUMBER": "42",
    "GITHUB_RUN_ID": "9001",
}


def _render(tmp_path: Path, text: str, env: dict[str, str], overrides: list[str] | None = None) -> config.Loaded:
    (tmp_path / "ci-toolkit.yaml").write_text(text)
    return config.load({"HOME": str(tmp_path), **env}, cwd=tmp_path, global_files=[], overrides=overrides or [])


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("DOCKER_REGISTRY", "docker.io"),
        ("BUILD_NUMBER", "42"),
        ("BUILD_ID", "9001"),
        ("BUILD_TAG", "0123456-42"),
        ("GIT_SHA", GITHUB["GITHUB_SHA"]),
        ("GIT_BRANCH", "main"),
        ("CI_PLATFORM", "github"),
        ("env.MY_VAR", "hello"),
    ],
)
def test_context_variable(tmp_path: Path, expr: str, expected: str) -> None:
    loaded = _render(tmp_path, f"cache-ref: '{{{{ {expr} }}}}'\n", {**GITHUB, "MY_VAR": "hello"})
    assert loaded.settings.cache_ref == expected


def test_docker_registry_comes_from_higher_layers(tmp_path: Path) -> None:
    loaded = _render(tmp_path, "cache-ref: '{{ DOCKER_REGISTRY }}/cache'\n", {}, ["docker-registry=mirror:5002"])
    assert loaded.settings.cache_ref == "mirror:5002/cache"


def test_docker_registry_set_in_the_file_itself_is_seen_by_its_templates(tmp_path: Path) -> None:
    loaded = _render(tmp_path, "docker-registry: m:5002\ncache-ref: '{{ DOCKER_REGISTRY }}/c'\n", {})
    assert loaded.settings.cache_ref == "m:5002/c"


def test_build_tag_is_a_valid_docker_tag_without_sha(tmp_path: Path) -> None:
    loaded = _render(tmp_path, "cache-ref: '{{ BUILD_TAG }}'\n", {"CI": "true", "BUILD_NUMBER": "feature/7"})
    assert loaded.settings.cache_ref == "feature-7"


def test_undefined_variable_names_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(ToolkitError) as info:
        _render(tmp_path, "builder: x\n\ncache-ref: '{{ NOPE }}'\n", {})
    message = info.value.message
    assert "ci-toolkit.yaml:3" in message
    assert "NOPE" in message
    assert info.value.exit_code == 2


def test_template_syntax_error_names_line(tmp_path: Path) -> None:
    with pytest.raises(ToolkitError) as info:
        _render(tmp_path, "builder: x\ncache-ref: '{{ BUILD_TAG '\n", {})
    assert "ci-toolkit.yaml:2" in info.value.message
