"""Masking that holds: every line of a multi-line secret, every form we print it in (shell
quoting, JSON, repr, URL encoding), URL credentials, and secrets held by settings registered
before any message (a config error included) can show them."""

from __future__ import annotations

import io
import json
import shlex
from pathlib import Path

import pytest

from ci_toolkit.build.argv import secret_build_args, source_url
from ci_toolkit.core.report import Masker, Reporter, without_userinfo
from tests.helpers import run_cli

KEY = "-----BEGIN KEY-----\nMIIEv-first-line-0001\n  second-line-0002  \n-----END KEY-----"
QUOTED = "Pa'ss\"w0rd-\\x"


def _reporter(provider: str = "github") -> tuple[Reporter, io.StringIO, io.StringIO]:
    err, out = io.StringIO(), io.StringIO()
    return Reporter(provider=provider, stream=err, stdout=out), err, out


def test_each_line_of_a_multi_line_secret_is_announced_on_stderr_and_masked() -> None:
    rep, err, out = _reporter()
    rep.add_secret(KEY)
    rep.info(f"value: {KEY}")
    rep.info("second-line-0002 alone")
    announced = [ln.removeprefix("::add-mask::") for ln in err.getvalue().splitlines() if ln.startswith("::add-mask")]
    lines = ["-----BEGIN KEY-----", "MIIEv-first-line-0001", "second-line-0002", "-----END KEY-----"]
    assert sorted(announced) == sorted(lines)
    assert out.getvalue() == ""
    shown = [ln for ln in err.getvalue().splitlines() if not ln.startswith("::add-mask::")]
    assert not any(piece in line for line in shown for piece in announced), shown


def test_add_mask_data_is_escaped_as_the_runner_unescapes_it() -> None:
    rep, err, _ = _reporter()
    rep.add_secret("100%25-secret")
    assert err.getvalue() == "::add-mask::100%2525-secret\n"


@pytest.mark.parametrize(
    "form",
    [
        QUOTED,
        shlex.quote(QUOTED),
        shlex.quote(f"PW={QUOTED}"),
        json.dumps({"pw": QUOTED}),
        repr([QUOTED]),
        "https://u:" + __import__("urllib.parse").parse.quote(QUOTED, safe="") + "@host/x",
    ],
)
def test_every_printed_form_of_a_quote_bearing_secret_is_masked(form: str) -> None:
    masker = Masker()
    masker.add(QUOTED)
    masked = masker(form)
    assert "ss" not in masked.replace("***", ""), masked


def test_the_echoed_command_masks_before_quoting() -> None:
    rep, err, _ = _reporter("local")
    rep.add_secret(QUOTED)
    rep.echo_command(["docker", "login", "-p", QUOTED, f"--build-arg=PW={QUOTED}"])
    assert err.getvalue() == "+ docker login -p '***' '--build-arg=PW=***'\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://user:tok3n@git.example/o/r.git", "https://git.example/o/r.git"),
        ("clone https://ghp_abc123@github.com/o/r done", "clone https://github.com/o/r done"),
        ("ssh://git@github.com/o/r.git", "ssh://git@github.com/o/r.git"),
        ("git+ssh://me:pw@host/r", "git+ssh://host/r"),
        ("no url here: a@b", "no url here: a@b"),
    ],
)
def test_url_credentials_are_removed(text: str, expected: str) -> None:
    assert without_userinfo(text) == expected
    assert "tok3n" not in Masker()(text) and "pw@" not in Masker()(text)


def test_git_url_credentials_never_reach_the_source_label() -> None:
    env = {"JENKINS_URL": "http://j", "GIT_URL": "https://jenkins:s3cr3t-t0ken@git.example/o/r.git"}
    assert source_url(env) == "https://git.example/o/r.git"


def test_build_args_holding_a_secret_go_by_environment() -> None:
    masker = Masker()
    masker.add("hunter2secret")
    argv = ["docker", "--build-arg", "A=plain", "--build-arg", "PW=x-hunter2secret-y", "--build-arg=T=hunter2secret"]
    argv += ["--label", "PW=hunter2secret", "--build-arg"]
    out, env = secret_build_args(argv, masker)
    assert out == [
        *["docker", "--build-arg", "A=plain", "--build-arg", "PW", "--build-arg=T"],
        *["--label", "PW=hunter2secret", "--build-arg"],
    ]
    assert env == {"PW": "x-hunter2secret-y", "T": "hunter2secret"}


def test_a_secret_bearing_config_error_is_masked_and_announced_first(tmp_path: Path) -> None:
    (tmp_path / "ci-toolkit.yaml").write_text("registry-password: ['{{ env.REG_PW }}']\n")
    env = {"GITHUB_ACTIONS": "true", "REG_PW": "hunter2secret"}
    result = run_cli(["config", "show"], env=env, cwd=tmp_path)
    assert result.code == 2
    lines = result.err.splitlines()
    assert lines[0] == "::add-mask::hunter2secret"
    assert len(result.error_lines) == 1 and "hunter2secret" not in result.error_lines[0]
    assert "expects a string" in result.error_lines[0]


@pytest.mark.parametrize(
    ("source", "env", "args"),
    [
        ("environment", {"CI_TOOLKIT_REGISTRY_PASSWORD": "hunter2secret", "CI_TOOLKIT_BUILDER": "["}, []),
        ("--set", {}, ["--set", "registry-password=hunter2secret", "--set", "nope=hunter2secret"]),
    ],
)
def test_secrets_from_every_layer_are_registered_before_errors(
    source: str, env: dict[str, str], args: list[str]
) -> None:
    result = run_cli([*args, "config", "show"], env={"GITHUB_ACTIONS": "true", **env})
    assert "::add-mask::hunter2secret" in result.err, source
    assert "hunter2secret" not in "".join(ln for ln in result.err.splitlines() if not ln.startswith("::add-mask"))


def test_a_malformed_env_file_line_is_not_shown(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("REG_PW='hunter2secret\n")
    result = run_cli(["config", "show"], cwd=tmp_path)
    assert result.code == 2 and "hunter2secret" not in result.err and "REG_PW" in result.err


def test_json_on_github_with_a_password_is_json_alone_on_stdout(tmp_path: Path) -> None:
    env = {"GITHUB_ACTIONS": "true", "CI_TOOLKIT_REGISTRY_PASSWORD": KEY}
    result = run_cli(["config", "show", "--json"], env=env, cwd=tmp_path)
    assert result.code == 0
    json.loads(result.out)
    assert "::add-mask::MIIEv-first-line-0001" in result.err
    assert "MIIEv" not in result.out
