"""Secrets never reach the log, the outputs or a command line, checked as a user would: the
real CLI (and scripts/ci-action) in its own process on the test bed, every process's
/proc/<pid>/cmdline sampled while it runs, and then stdout, stderr, the step summary, the
output files and the image's labels searched for every line of the secret.

`::add-mask::` lines are the one place a secret is meant to appear: the runner reads them and
prints nothing; every line of a secret must have one."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import REPO

CLI = [sys.executable, "-m", "ci_toolkit"]


@dataclass
class Watched:
    code: int
    out: str
    err: str
    cmdlines: list[str]

    @property
    def log(self) -> str:
        """stderr without the add-mask commands the runner consumes."""
        return "\n".join(ln for ln in self.err.splitlines() if not ln.startswith("::add-mask::"))

    def masked_lines(self) -> set[str]:
        return {ln.removeprefix("::add-mask::") for ln in self.err.splitlines() if ln.startswith("::add-mask::")}


def _cmdlines(needles: Sequence[str], seen: list[str], stop: threading.Event) -> None:
    while not stop.is_set():
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                    text = fh.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if any(n in text for n in needles):
                seen.append(text)
        stop.wait(0.02)


def run_watched(argv: Sequence[str], env: Mapping[str, str], cwd: Path, needles: Sequence[str]) -> Watched:
    seen: list[str] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_cmdlines, args=(needles, seen, stop), daemon=True)
    watcher.start()
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, env=dict(env), cwd=cwd, timeout=600)
    finally:
        stop.set()
        watcher.join()
    return Watched(proc.returncode, proc.stdout, proc.stderr, seen)


def secret_lines(secret: str) -> list[str]:
    return [ln.strip() for ln in secret.splitlines() if len(ln.strip()) >= 3]


def assert_nowhere(secret: str, run: Watched, *texts: str) -> None:
    for line in secret_lines(secret):
        assert line not in run.out, f"stdout shows {line!r}"
        assert line not in run.log, f"stderr shows {line!r}"
        assert not [c for c in run.cmdlines if line in c], f"a command line shows {line!r}"
        for text in texts:
            assert line not in text, f"an output shows {line!r}"


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def secret(uid: str) -> str:
    # Multi-line, quote-bearing, with shell and JSON specials: every line must stay hidden.
    return f"-----BEGIN KEY {uid}-----\nPa'ss\"w0rd-{uid}-line2 $HOME `x`\nthird\\line-{uid}\n-----END KEY {uid}-----"


@pytest.fixture
def github(tmp_path: Path, uid: str) -> dict[str, str]:
    return {
        **os.environ,
        "GITHUB_ACTIONS": "true",
        "CI": "true",
        "GITHUB_REPOSITORY": "example/app",
        "GITHUB_RUN_ID": uid,
        "GITHUB_RUN_NUMBER": "7",
        "GITHUB_SHA": "0" * 40,
        "GITHUB_OUTPUT": str(tmp_path / "github_output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }


@pytest.fixture
def image(uid: str) -> Iterator[str]:
    tag = f"ci-toolkit-secrets-{uid}:test"
    yield tag
    subprocess.run(["docker", "image", "rm", "--force", tag], capture_output=True, check=False)


def _project(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        'FROM busybox\nARG PW\nRUN --mount=type=secret,id=pw cat /run/secrets/pw && echo "arg=$PW" && sleep 2\n'
    )
    return ctx


def test_a_github_build_with_a_multi_line_quoted_password_shows_it_nowhere(
    tmp_path: Path, secret: str, github: dict[str, str], image: str
) -> None:
    ctx = _project(tmp_path)
    env = {**github, "CI_TOOLKIT_REGISTRY_USER": "u", "CI_TOOLKIT_REGISTRY_PASSWORD": secret, "PW": secret}
    # The build arg comes from extra args, as a CI variable would give it: on no command line.
    env["CI_IMAGE_BUILD_EXTRA_ARGS"] = '--build-arg "PW=${PW}"'
    argv = [*CLI, "--json", "-v", "build", "--load", "--tag", image, "--secret", "id=pw,env=PW"]
    argv += ["--metadata-file", str(tmp_path / "meta.json"), "--cache-backend", "none"]
    run = run_watched([*argv, str(ctx)], env, tmp_path, secret_lines(secret))
    assert run.code == 0, run.err
    result = json.loads(run.out)  # --json on GitHub: stdout is the JSON result alone
    assert result["digest"].startswith("sha256:")
    assert set(secret_lines(secret)) <= run.masked_lines()
    assert "***" in run.log  # the build printed the secret (cat, echo) and we masked it
    assert "--build-arg PW " in run.log  # by name: the value went through buildx's environment
    labels = _labels(image)
    outputs = [(tmp_path / n).read_text() for n in ("github_output", "summary.md", "meta.json")]
    assert_nowhere(secret, run, *outputs, json.dumps(labels))


def test_credentials_in_git_url_reach_neither_the_label_nor_the_log(tmp_path: Path, uid: str, image: str) -> None:
    ctx = _project(tmp_path)
    token = f"gh-t0ken-{uid}"
    env = {
        **os.environ,
        "JENKINS_URL": "http://jenkins.example/",
        "BUILD_NUMBER": "3",
        "GIT_URL": f"https://jenkins:{token}@git.example/o/r.git",
        "GIT_COMMIT": "1" * 40,
        "PW": "x",
    }
    argv = [*CLI, "-v", "build", "--load", "--tag", image, "--secret", "id=pw,env=PW", "--cache-backend", "none"]
    run = run_watched([*argv, str(ctx)], env, tmp_path, [token])
    assert run.code == 0, run.err
    assert _labels(image)["org.opencontainers.image.source"] == "https://git.example/o/r.git"
    assert_nowhere(token, run)


def _labels(image: str) -> dict[str, str]:
    out = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", image],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(out) or {})


def test_a_secret_bearing_config_error_on_github_is_announced_then_masked(
    tmp_path: Path, secret: str, github: dict[str, str]
) -> None:
    (tmp_path / "ci-toolkit.yaml").write_text("registry-password: [{{ env.REG_PW|tojson }}]\n")
    run = run_watched([*CLI, "sweep"], {**github, "REG_PW": secret}, tmp_path, secret_lines(secret))
    assert run.code == 2
    assert run.err.count("error:") == 1 and "expects a string" in run.err
    assert set(secret_lines(secret)) <= run.masked_lines()
    first_error = run.err.index("error:")
    assert all(run.err.index(f"::add-mask::{ln}") < first_error for ln in secret_lines(secret))
    assert_nowhere(secret, run)


def test_secret_env_through_ci_action_stays_off_every_command_line(
    tmp_path: Path, secret: str, github: dict[str, str]
) -> None:
    one_line = secret.splitlines()[1]
    env = {**github, "CI_TOOLKIT_BIN": str(Path(sys.executable).parent / "ci-toolkit")}
    script = 'sleep 1; echo "token=$API_TOKEN"'
    # As action.yml hands them over: inputs in the environment, never on our own command line.
    env["INPUT_ARGS"] = shlex.join(["--secret-env", f"API_TOKEN={one_line}", "busybox", "sh", "-c", script])
    run = run_watched([str(REPO / "scripts" / "ci-action"), "run"], env, tmp_path, [one_line])
    assert run.code == 0, run.err
    assert "token=***" in run.log  # the command printed it; we masked it
    assert "--secret-env API_TOKEN " in run.log  # echoed by name only
    assert one_line in run.masked_lines()
    outputs = [(tmp_path / n).read_text() for n in ("github_output", "summary.md") if (tmp_path / n).exists()]
    assert_nowhere(one_line, run, *outputs)
