"""Bad input to `build` / `expand-args`: exit 2, one `error:` line, nothing executed (the unit
guard forbids subprocesses) and nothing created outside the cache root."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers import run_cli


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "Dockerfile").write_text("FROM busybox\n")
    return tmp_path


def _tree(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


BAD_EXTRA_ARGS = [
    "'unbalanced",
    '"unbalanced',
    "$(rm -rf /)",
    "`touch /tmp/pwned`",
    "--pull; rm -rf /",
    "--pull | tee x",
    "--pull && true",
    "--pull > out",
    "--pull < in",
    "$UNDEFINED_FOR_TEST",
    "${",
    "${A:=b}",
    "${UNDEFINED_FOR_TEST}",
    "a\\",
    "x" * 10_000,
]
BAD_ARGS = [
    ["--cache-key", "../x"],
    ["--cache-key", "/etc"],
    ["--cache-key", ""],
    ["--cache-key", "a/../../b"],
    ["--cache-key", "k" * 10_000],
    ["--cache-key", "tab\tkey"],
    ["--platform", "linux"],
    ["--platform", "linux/amd64,windows"],
    ["--platform", "Linux/AMD64"],
    ["--build-arg", "NOEQUALS"],
    ["--build-arg", "=value"],
    ["--build-arg", "BAD-NAME=1"],
    ["--label", "novalue"],
    ["--build-context", "name"],
    ["--tag", "UPPER/Case:1"],
    ["--tag", "repo:bad tag"],
    ["--tag", ""],
    ["--push", "--load"],
    ["--cache-backend", "registry"],
    ["--cache-backend", "registry", "--cache-ref", "repo:tag"],
    ["--cache-backend", "floppy"],
    ["--file", "missing.Dockerfile"],
    ["no-such-context"],
]


@pytest.mark.parametrize("extra", BAD_EXTRA_ARGS)
def test_bad_extra_args(workdir: Path, extra: str) -> None:
    root = workdir / "cache-root"
    before = _tree(workdir)
    res = run_cli(["build", "--cache-root", str(root), "."], env={"CI_IMAGE_BUILD_EXTRA_ARGS": extra}, cwd=workdir)
    assert res.code == 2, res.err
    assert len(res.error_lines) == 1 and "CI_IMAGE_BUILD_EXTRA_ARGS" in res.error_lines[0]
    assert len(res.err.strip().splitlines()) == 1 and "Traceback" not in res.err
    assert _tree(workdir) == before, "nothing created"
    assert not Path("/tmp/pwned").exists()


@pytest.mark.parametrize("args", BAD_ARGS, ids=lambda a: " ".join(a)[:40])
def test_bad_build_arguments(workdir: Path, args: list[str]) -> None:
    root = workdir / "cache-root"
    before = _tree(workdir)
    res = run_cli(
        ["build", "--cache-root", str(root), *args, *([] if args == ["no-such-context"] else ["."])], cwd=workdir
    )
    assert res.code == 2, res.err
    assert len(res.error_lines) == 1 and len(res.err.strip().splitlines()) == 1, res.err
    assert _tree(workdir) == before, "nothing created"


def test_missing_paths_are_named(workdir: Path) -> None:
    res = run_cli(["build", "no-such-context"], cwd=workdir)
    assert "no-such-context" in res.error_lines[0]
    res = run_cli(["build", "--file", "missing.Dockerfile", "."], cwd=workdir)
    assert "missing.Dockerfile" in res.error_lines[0]


def test_nul_in_container_name_env(workdir: Path) -> None:
    res = run_cli(
        ["build", "--cache-root", str(workdir / "r"), "."], env={"CONTAINER_NAME": "../../escape"}, cwd=workdir
    )
    assert res.code == 2 and "CONTAINER_NAME" in res.error_lines[0]
    assert not (workdir / "r").exists() and not (workdir.parent / "escape").exists()


def test_expand_args_command(workdir: Path) -> None:
    env = {"CONTAINER_NAME": "asan", "CI_IMAGE_BUILD_EXTRA_ARGS": "--cache-to type=local,dest=/c/${CONTAINER_NAME}"}
    res = run_cli(["expand-args"], env=env, cwd=workdir)
    assert res.code == 0 and res.out.splitlines() == ["--cache-to", "type=local,dest=/c/asan"]
    res = run_cli(["expand-args", "--json", "a 'b c' \"$CONTAINER_NAME\""], env=env, cwd=workdir)
    assert json.loads(res.out) == ["a", "b c", "asan"]
    res = run_cli(["expand-args", "$(id)"], env=env, cwd=workdir)
    assert res.code == 2 and len(res.error_lines) == 1


def test_extra_args_env_setting_names_the_variable(workdir: Path) -> None:
    env = {"MY_ARGS": "--pull '$X'", "CI_TOOLKIT_EXTRA_ARGS_ENV": "MY_ARGS"}
    res = run_cli(["expand-args", "--json"], env=env, cwd=workdir)
    assert json.loads(res.out) == ["--pull", "$X"]


def test_default_cache_root_follows_xdg(workdir: Path) -> None:
    from ci_toolkit.core.config import default_cache_root

    assert default_cache_root({"XDG_CACHE_HOME": "/x", "HOME": "/h"}) == Path("/x/ci-toolkit/buildx")
    assert default_cache_root({"HOME": "/h"}) == Path("/h/.cache/ci-toolkit/buildx")
    assert os.sep == "/"
