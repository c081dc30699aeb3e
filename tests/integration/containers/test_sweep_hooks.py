"""The runner hooks in scripts/hooks/, each run as the CI would run it, against the engine.
Every call adds --label sweeptest=<unique> so the tests never sweep anyone else's resources."""

from __future__ import annotations

import configparser
import os
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from ci_toolkit.containers import labels
from tests.helpers import REPO
from tests.integration.containers.helpers import client, force_remove, resources

HOOKS = REPO / "scripts" / "hooks"
BIN = str(Path(sys.executable).parent)


@pytest.fixture()
def tag() -> Iterator[str]:
    value = uuid.uuid4().hex[:10]
    yield value
    force_remove(f"sweeptest={value}")


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _make(tag: str, job: str, *, pid: int | None = None, host: str | None = None, age: float = 0) -> None:
    ctx = labels.label_context(prefix="ci-toolkit", job_id=job, ci="x", run_id="", user_labels={"sweeptest": tag})
    tags = ctx.labels(role="run")
    if pid is not None:
        tags["ci-toolkit.pid"] = str(pid)
    if host is not None:
        tags["ci-toolkit.host-id"] = host
    if age:
        tags["ci-toolkit.created"] = labels.format_time(datetime.now(timezone.utc) - timedelta(seconds=age))
    api = client().api
    name = f"sweeptest-{uuid.uuid4().hex[:8]}"
    api.create_container("busybox", command=["true"], labels=tags, name=name)
    api.create_network(name, labels=tags)
    api.create_volume(name=name, labels=tags)


def _jobs(tag: str) -> set[str]:
    api = client().api
    query = {"label": [f"sweeptest={tag}"]}
    jobs = {c["Labels"]["ci-toolkit.job-id"] for c in api.containers(all=True, filters=query)}
    assert [len(v) for v in resources(f"sweeptest={tag}").values()] == [len(jobs)] * 3
    return jobs


def _run(command: str | list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    full = {"PATH": f"{BIN}:{os.environ['PATH']}", "HOME": os.environ.get("HOME", "/root"), **env}
    argv = ["bash", "-c", command] if isinstance(command, str) else command
    return subprocess.run(argv, env=full, capture_output=True, text=True, timeout=120, cwd=REPO)


def test_github_job_completed_hook(tag: str) -> None:
    run_id = uuid.uuid4().hex[:8]
    _make(tag, f"gh-{run_id}-1-build")
    _make(tag, "other-dead", pid=_dead_pid())
    _make(tag, "other-live")
    env = {"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": run_id, "GITHUB_RUN_ATTEMPT": "1", "GITHUB_JOB": "build"}
    done = _run([str(HOOKS / "github-job-completed.sh"), "--label", f"sweeptest={tag}"], env)
    assert done.returncode == 0, done.stderr
    assert _jobs(tag) == {"other-live"}


@pytest.mark.parametrize(
    ("file", "key", "env_name", "prefix"),
    [
        ("gitlab-after-script.yml", (".ci-toolkit-sweep", "after_script"), "CI_JOB_ID", "gl-"),
        ("cirrus-always.yml", ("always", "ci_toolkit_sweep_script"), "CIRRUS_TASK_ID", "cirrus-"),
    ],
)
def test_ci_snippets(tag: str, file: str, key: tuple[str, str], env_name: str, prefix: str) -> None:
    job_number = uuid.uuid4().hex[:8]
    _make(tag, f"{prefix}{job_number}")
    _make(tag, f"{prefix}someone-else")
    snippet = yaml.safe_load((HOOKS / file).read_text())[key[0]][key[1]]
    commands = snippet if isinstance(snippet, list) else [snippet]
    for command in commands:
        done = _run(command, {env_name: job_number, "CI_TOOLKIT_SWEEP_ARGS": f"--label sweeptest={tag}"})
        assert done.returncode == 0, done.stderr
    assert _jobs(tag) == {f"{prefix}someone-else"}


def test_systemd_units(tag: str) -> None:
    service = configparser.ConfigParser(strict=False, interpolation=None)
    service.read(HOOKS / "ci-toolkit-sweep.service")
    timer = configparser.ConfigParser(strict=False, interpolation=None)
    timer.read(HOOKS / "ci-toolkit-sweep.timer")
    assert timer["Timer"]["OnUnitActiveSec"] and timer["Install"]["WantedBy"] == "timers.target"
    argv = shlex.split(service["Service"]["ExecStart"])
    assert argv[0] == "/usr/local/bin/ci-toolkit"
    _make(tag, "dead-here", pid=_dead_pid())
    _make(tag, "live-here")
    _make(tag, "far-old", host="f" * 16, age=2 * 86400)
    _make(tag, "far-new", host="f" * 16, age=3600)
    done = _run([f"{BIN}/ci-toolkit", *argv[1:], "--label", f"sweeptest={tag}"], {})
    assert done.returncode == 0, done.stderr
    assert _jobs(tag) == {"live-here", "far-new"}
