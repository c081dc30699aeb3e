"""buildrunner.yaml read as it is: its keys map onto our steps format, its template variables
are aliases of ours, and a key we do not provide is one line naming it, exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ci_toolkit.pipeline.buildrunner import translate
from tests.helpers import run_cli

CONTEXT = {"BUILD_TAG": "abc-7", "BUILDRUNNER_BUILD_NUMBER": "7", "BUILDRUNNER_BUILD_DOCKER_TAG": "abc-7"}


def _one(step: dict[str, Any], extras: dict[str, Any] | None = None) -> dict[str, Any]:
    project = {"steps": {"s": step}, "buildrunner-global": extras or {}}
    result: dict[str, Any] = translate(project, file="buildrunner.yaml", context=CONTEXT)["steps"]["s"]
    return result


def test_build_keys_take_our_names() -> None:
    step = _one(
        {
            "build": {
                "path": "ctx",
                "buildargs": {"A": 1},
                "no-cache": True,
                "pull": False,
                "platform": "linux/arm64/v8",
                "target": "t",
                "cache_from": ["repo/x:PR-1", {"type": "local", "src": "dir"}],
                "secrets": ["id=s,env=S"],
                "inject": {"a.txt": "dest/"},
            }
        }
    )
    assert step["build"] == {
        "path": "ctx",
        "build-args": {"A": 1},
        "no-cache": True,
        "pull": False,
        "platforms": ["linux/arm64/v8"],
        "target": "t",
        "cache-from": ["repo/x:PR-1", "type=local,src=dir"],
        "secrets": ["id=s,env=S"],
        "inject": {"a.txt": "dest/"},
    }


def test_build_as_a_string_is_the_context_and_import_ignores_the_rest() -> None:
    assert _one({"build": "sub/dir"})["build"] == {"path": "sub/dir"}
    assert _one({"build": {"import": "a.tar", "path": "x"}})["build"] == {"import": "a.tar"}


def test_push_and_commit_mappings_keep_buildrunners_meaning() -> None:
    step = _one(
        {
            "build": ".",
            "push": ["r/one", {"repository": "r/two", "tags": ["latest"], "add_build_tag": False}],
            "commit": "r/local:dev",
        }
    )
    assert step["push"] == ["r/one", {"repository": "r/two", "tags": ["latest"], "add-build-tag": False}]
    assert step["commit"] == "r/local:dev"


def test_run_keys_source_mount_and_buildrunner_environment() -> None:
    run = _one(
        {
            "run": {
                "image": "busybox",
                "cmd": "echo one",
                "cmds": ["echo two"],
                "dns_search": "example.test",
                "extra_hosts": {"h": "10.0.0.1"},
                "volumes_from": ["svc"],
                "pull": True,
                "ports": {8080: 8081},
                "env": {"MINE": "x"},
                "caches": {"maven": "/root/.m2", "/cache": ["k-1", "k-"]},
                "post-build": "post",
                "services": {"svc": {"image": "busybox", "wait_for": [80], "dns_search": "a"}},
            }
        },
        {"env": {"GLOBAL": "g"}},
    )["run"]
    assert run["cmds"] == ["echo one", "echo two"] and "cmd" not in run
    assert run["mount"] == "/source" and run["cwd"] == "/source"
    assert run["dns-search"] == ["example.test"] and run["extra-hosts"] == {"h": "10.0.0.1"}
    assert run["volumes-from"] == ["svc"] and run["pull-policy"] == "always" and run["ports"] == {"8080": 8081}
    assert run["caches"] == {"/root/.m2": ["maven"], "/cache": ["k-1", "k-"]}
    assert run["post-build"] == {"path": "post"}
    assert run["env"]["MINE"] == "x" and run["env"]["GLOBAL"] == "g"
    assert run["env"]["BUILDRUNNER_STEP_NAME"] == "s" and run["env"]["BUILDRUNNER_BUILD_DOCKER_TAG"] == "abc-7"
    assert len(run["env"]["BUILDRUNNER_STEP_ID"]) == 36
    service = run["services"]["svc"]
    assert service["wait-for"] == [80] and service["dns-search"] == ["a"] and service["env"]["GLOBAL"] == "g"


def test_platform_builders_pick_the_steps_builder() -> None:
    extras = {"platform-builders": {"linux/arm64": "arm-builder"}}
    assert _one({"build": {"path": ".", "platforms": ["linux/arm64"]}}, extras)["build"]["builder"] == "arm-builder"


UNSUPPORTED = [
    ({"run": {"image": "b", "systemd": True}}, "steps.s.run.systemd", "systemd"),
    ({"run": {"image": "b", "provisioners": {"shell": "x.sh"}}}, "steps.s.run.provisioners", "cmds:"),
    ({"run": {"image": "b", "ssh-keys": ["k"]}}, "steps.s.run.ssh-keys", "deploy token"),
    ({"remote": {"host": "h", "cmd": "c"}}, "steps.s.remote", "run: step"),
    ({"pypi-push": "repo"}, "steps.s.pypi-push", "twine"),
    (
        {"run": {"image": "b", "services": {"x": {"image": "b", "inject-ssh-agent": True}}}},
        "steps.s.run.services.x.inject-ssh-agent",
        "no ssh agent",
    ),
    ({"build": {"path": ".", "cache_to": "x"}}, "steps.s.build.cache_to", "bounded local store"),
    ({"run": {"image": "b", "privileged": True}}, "steps.s.run.privileged", "privileged"),
]


@pytest.mark.parametrize(("step", "where", "hint"), UNSUPPORTED, ids=[u[1] for u in UNSUPPORTED])
def test_unsupported_keys_say_so_and_name_the_alternative(step: dict[str, Any], where: str, hint: str) -> None:
    with pytest.raises(Exception) as info:
        _one(step)
    message = str(info.value)
    assert message.startswith(f"buildrunner.yaml: {where}: ")
    assert "a buildrunner feature ci-toolkit does not provide" in message and hint in message


def _project(tmp_path: Path, text: str, globals_text: str = "") -> Path:
    (tmp_path / "buildrunner.yaml").write_text(text)
    if globals_text:
        (tmp_path / ".buildrunner.yaml").write_text(globals_text)
    return tmp_path


SEED = """steps:
  build-base:
    build:
      dockerfile: |
        FROM {{ DOCKER_REGISTRY }}/busybox:latest
        CMD /do-something-cool
      platforms:
        - linux/amd64
        - linux/arm64/v8
    push: test-image1

  build-from-base:
    build:
      dockerfile: |
        FROM test-image1:{{ BUILDRUNNER_BUILD_DOCKER_TAG }}
        CMD /do-something-else
      platforms:
        - linux/amd64
        - linux/arm64/v8
    push: test-image2
"""


def test_buildrunner_yaml_is_found_by_default_with_its_global_file(tmp_path: Path) -> None:
    proj = _project(tmp_path, SEED, "build-registry: 127.0.0.1:5000\ndocker-registry: mirror.test:5000\n")
    result = run_cli(["--json", "pipeline", "plan"], env={"BUILD_NUMBER": "42"}, cwd=proj)
    assert result.code == 0, result.err
    steps = json.loads(result.out)["steps"]
    assert steps[1]["depends"] == ["build-base"]
    assert "FROM mirror.test:5000/busybox:latest" in steps[0]["dockerfile"]
    assert "FROM test-image1:42" in steps[1]["dockerfile"]
    assert steps[1]["image"].startswith("127.0.0.1:5000/")


def test_unknown_top_level_key_and_legacy_builder(tmp_path: Path) -> None:
    proj = _project(tmp_path, "use-legacy-builder: true\n" + SEED)
    result = run_cli(["pipeline", "validate"], cwd=proj)
    assert result.code == 2 and len(result.error_lines) == 1
    assert "use-legacy-builder is a buildrunner feature ci-toolkit does not provide" in result.err
    proj = _project(tmp_path, "use-legacy-builder: false\nversion: 2.0\n" + SEED)
    assert run_cli(["pipeline", "validate"], cwd=proj, env={"CI_TOOLKIT_BUILD_REGISTRY": "r:5000"}).code == 0


def test_refused_global_key_names_its_file(tmp_path: Path) -> None:
    proj = _project(tmp_path, SEED, "security-scan:\n  enabled: true\n")
    result = run_cli(["pipeline", "validate"], cwd=proj)
    assert result.code == 2 and "security-scan: a buildrunner feature ci-toolkit does not provide" in result.err


def test_errors_use_buildrunners_key_names(tmp_path: Path) -> None:
    proj = _project(tmp_path, "steps:\n  a:\n    build:\n      dockerfile: 'FROM x'\n      buildargs: {X: [1]}\n")
    result = run_cli(["pipeline", "validate"], cwd=proj)
    assert result.code == 2 and "steps.a.build.buildargs.X" in result.err
