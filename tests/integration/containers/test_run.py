"""`ci-toolkit run` against the real engine: services, aliases, env separation, readiness."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import run_cli
from tests.integration.containers.helpers import (
    SILENT_SERVICE,
    built_image,
    force_remove,
    nothing,
    resources,
)


@pytest.fixture()
def job() -> Iterator[str]:
    job_id = f"test-run-{uuid.uuid4().hex[:8]}"
    yield job_id
    force_remove(f"ci-toolkit.job-id={job_id}")


def test_services_reachable_by_aliases_env_split_and_exit_code(http_image: str, job: str, tmp_path: Path) -> None:
    (tmp_path / "marker.txt").write_text("from-the-host\n")
    script = (
        "cat marker.txt; echo secret=$TOKEN; "
        "wget -qO- http://web:8080/env.txt > seen-web.txt && "
        f"wget -qO- http://{http_image.split(':')[0]}:8080/env.txt > /dev/null && echo both-aliases; exit 7"
    )
    result = run_cli(
        [
            "run",
            "--set",
            f"job-id={job}",
            "--service",
            f"{http_image}:web",
            "--env",
            "JOBVAR=shared",
            "--service-env",
            "SVCVAR=svc-only",
            "--secret-env",
            "TOKEN",
            "busybox",
            "--",
            "sh",
            "-c",
            script,
        ],
        env={"TOKEN": "hunter2-secret"},
        cwd=tmp_path,
    )
    assert result.code == 7, result.err
    assert "from-the-host" in result.out
    assert "both-aliases" in result.out
    assert "hunter2-secret" not in result.out + result.err, "secrets are masked"
    assert "secret=***" in result.out
    service_env = (tmp_path / "seen-web.txt").read_text()
    assert "JOBVAR=shared" in service_env and "SVCVAR=svc-only" in service_env
    assert "TOKEN" not in service_env, "secret variables go only to the build container"
    assert "accepting connections on port 8080" in result.err
    assert nothing(resources(f"ci-toolkit.job-id={job}"))


def test_service_that_never_opens_its_port(job: str, tmp_path: Path) -> None:
    with built_image(SILENT_SERVICE) as silent:
        result = run_cli(
            ["run", "--set", f"job-id={job}", "--service-timeout", "2s", "--service", silent, "busybox", "true"],
            cwd=tmp_path,
        )
    assert result.code == 1
    assert len(result.error_lines) == 1, result.err
    assert silent in result.error_lines[0] and "8080/tcp" in result.error_lines[0] and "2s" in result.error_lines[0]
    assert nothing(resources(f"ci-toolkit.job-id={job}"))


def test_timeout_kills_the_command(job: str, tmp_path: Path) -> None:
    result = run_cli(["run", "--set", f"job-id={job}", "--timeout", "1s", "busybox", "sleep", "60"], cwd=tmp_path)
    assert result.code == 1
    assert result.error_lines == ["error: command timed out after 1s"]
    assert nothing(resources(f"ci-toolkit.job-id={job}"))


def test_pull_policy_never_with_a_missing_image(job: str, tmp_path: Path) -> None:
    missing = f"ci-toolkit-absent-{uuid.uuid4().hex[:8]}:1"
    result = run_cli(["run", "--set", f"job-id={job}", "--pull-policy", "never", missing, "true"], cwd=tmp_path)
    assert result.code == 3
    assert len(result.error_lines) == 1 and missing in result.error_lines[0]
    assert nothing(resources(f"ci-toolkit.job-id={job}"))


def test_pull_policy_always_pulls_through_the_engine(job: str, tmp_path: Path) -> None:
    result = run_cli(
        ["run", "--set", f"job-id={job}", "--pull-policy", "always", "busybox:latest", "echo", "pulled-ok"],
        cwd=tmp_path,
    )
    assert result.code == 0, result.err
    assert re.search(r"^pulling \S*busybox:latest$", result.err, re.M), result.err
    assert "pulled-ok" in result.out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--volume", "nodst"], "--volume"),
        (["--tmpfs", "relative"], "--tmpfs"),
        (["--timeout", "soon"], "--timeout"),
        (["--service", "a:b:c:d"], "--service"),
        (["--container-labels", "ci-toolkit.managed=true"], "reserved prefix"),
    ],
)
def test_bad_input_is_one_error_line(args: list[str], needle: str, tmp_path: Path) -> None:
    result = run_cli(["run", *args, "busybox", "true"], cwd=tmp_path)
    assert result.code == 2
    assert len(result.error_lines) == 1 and needle in result.error_lines[0], result.err


def test_pulls_go_through_the_configured_mirror(job: str, tmp_path: Path) -> None:
    result = run_cli(
        [
            "run",
            "--set",
            f"job-id={job}",
            "--set",
            "mirrors={docker.io: [127.0.0.1:5002]}",
            "--pull-policy",
            "always",
            "busybox:latest",
            "echo",
            "mirrored-ok",
        ],
        cwd=tmp_path,
    )
    assert result.code == 0, result.err
    assert "pulling 127.0.0.1:5002/library/busybox:latest" in result.err
    assert "mirrored-ok" in result.out


def test_service_mapping_gives_its_own_command_variables_and_aliases(job: str, tmp_path: Path) -> None:
    """GitLab's services: keywords: a plain busybox becomes a web server through `command`,
    serves its own `variables`, answers to both `alias` names, and `wait_for` names the port
    (busybox exposes none, so without it nothing would be waited for)."""
    (tmp_path / "services.yaml").write_text(
        "- name: busybox\n"
        "  alias: web, www\n"
        "  entrypoint: [sh, -c]\n"
        "  command: ['mkdir -p /srv && echo \"$GREETING\" > /srv/index.html && exec httpd -f -p 8080 -h /srv']\n"
        "  variables: {GREETING: hello-from-the-service}\n"
        "  pull_policy: if-not-present\n"
        "  wait_for: 8080\n"
    )
    script = "wget -qO- http://web:8080/ && wget -qO- http://www:8080/ && echo GREETING=${GREETING:-unset}"
    result = run_cli(
        ["run", "--set", f"job-id={job}", "--service", "services.yaml", "busybox", "--", "sh", "-c", script],
        cwd=tmp_path,
    )
    assert result.code == 0, result.err
    assert result.out.count("hello-from-the-service") == 2
    assert "GREETING=unset" in result.out, "a service's variables stay with the service"
    assert "accepting connections on port 8080" in result.err


def test_inline_service_mapping_and_bad_key(job: str, tmp_path: Path) -> None:
    inline = "{name: busybox, alias: echo, command: [sh, -c, 'exec httpd -f -p 9090 -h /etc'], wait_for: [9090]}"
    ok = run_cli(
        [
            "run",
            "--set",
            f"job-id={job}",
            "--service",
            inline,
            "busybox",
            "--",
            "wget",
            "-qO-",
            "http://echo:9090/hostname",
        ],
        cwd=tmp_path,
    )
    assert ok.code == 0, ok.err
    bad = run_cli(["run", "--service", "{name: busybox, ports: [1]}", "busybox", "--", "true"], cwd=tmp_path)
    assert bad.code == 2 and bad.error_lines == [
        "error: --service: unknown service key 'ports'; known: name, image, alias, aliases, entrypoint, command, "
        "variables, pull_policy, wait_for"
    ]
