"""Transient registry faults are retried: a fault-injecting proxy (HTTPS, since the engine
reaches a loopback registry it has no explicit insecure entry for over TLS) in front of the
test bed's push registry answers 429 with Retry-After: 1, resets a blob upload mid-way, and
answers 500 to manifest PUTs. The engine's BuildKit retries a few 500s itself, so the
manifest 500s last until buildx gives up once: the toolkit's own retry (one log line) is
what makes `build --push` and `pipeline run --push` succeed. A 401 fails at once, naming
where the credentials came from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import CliResult, run_cli_process
from tests.integration.registry.test_promote_support import Fault, ProxyState, recording_proxy, tag_digest

UPSTREAM = "127.0.0.1:5000"


@pytest.fixture()
def proxy() -> Iterator[tuple[str, ProxyState]]:
    with recording_proxy(UPSTREAM, keep_host=True, tls=True) as found:
        yield found


def _faults(state: ProxyState) -> None:
    state.faults += [
        Fault("status", status=429, retry_after="1", method="POST", path="/blobs/uploads/"),
        Fault("reset", method="PUT", path="/blobs/uploads/"),
    ]
    # Every manifest PUT fails until the toolkit says it retries (see _run_until_retry).
    state.persistent = Fault("status", status=500, method="PUT", path="/manifests/")


def _run_until_retry(args: list[str], env: dict[str, str], cwd: Path, state: ProxyState) -> CliResult:
    """Run the CLI; the first `retrying ` line it prints ends the registry's outage."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ci_toolkit", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
        cwd=cwd,
    )
    err: list[str] = []

    def watch() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            err.append(line)
            if line.startswith("retrying "):
                with state.lock:
                    state.persistent = None

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    watcher.join(timeout=10)
    return CliResult(proc.returncode, out, "".join(err))


def _env(tmp_path: Path) -> dict[str, str]:
    # No credentials of the host's user, and no CI provider of the machine running the tests.
    return {"DOCKER_CONFIG": str(tmp_path / "docker-config"), "CI": "", "GITHUB_ACTIONS": ""}


def _context(tmp_path: Path, marker: str) -> Path:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM busybox\nRUN echo {marker} > /marker\n")
    return context


def test_build_push_survives_500s_a_reset_and_a_429(tmp_path: Path, proxy: tuple[str, ProxyState]) -> None:
    address, state = proxy
    marker = uuid.uuid4().hex[:10]
    repo = f"ci-toolkit-tests/faults-{marker}"
    _faults(state)
    result = _run_until_retry(
        ["build", str(_context(tmp_path, marker)), "--push", "-t", f"{address}/{repo}:1", "--cache-backend", "none"],
        _env(tmp_path),
        tmp_path,
        state,
    )
    assert result.code == 0, result.err
    retries = [ln for ln in result.err.splitlines() if ln.startswith("retrying push of ")]
    assert retries, result.err
    assert all(f"push of {address}/{repo}:1 (" in ln for ln in retries)
    assert state.faults == [], "the 429 and the reset were never hit"
    assert [r for r in state.requests("PUT", "/manifests/") if r[2] == 500], "no manifest PUT met a 500"
    assert tag_digest(f"http://{UPSTREAM}", repo, "1"), "the image is not in the registry"


def test_pipeline_run_push_survives_the_same_faults(tmp_path: Path, proxy: tuple[str, ProxyState]) -> None:
    address, state = proxy
    marker = uuid.uuid4().hex[:10]
    repo = f"ci-toolkit-tests/pipefaults-{marker}"
    project = tmp_path / "project"
    project.mkdir()
    (project / "ci-toolkit.yaml").write_text(
        f"build-registry: {address}\n"
        "steps:\n"
        "  one:\n"
        "    build:\n"
        f"      dockerfile: |\n        FROM busybox\n        RUN echo {marker} > /marker\n"
        f"    push: {address}/{repo}\n"
    )
    _faults(state)
    env = {**_env(tmp_path), "BUILD_NUMBER": "7"}
    result = _run_until_retry(["pipeline", "run", "--push"], env, project, state)
    assert result.code == 0, result.err
    assert any(ln.startswith("retrying ") for ln in result.err.splitlines()), result.err
    artifacts = json.loads((project / "artifacts.json").read_text()) if (project / "artifacts.json").exists() else {}
    assert not artifacts or artifacts["steps"]["one"]["status"] == "ok"
    assert tag_digest(f"http://{UPSTREAM}", repo, "7"), "the step's image is not in the registry"


def test_401_fails_at_once_naming_the_credential_source(tmp_path: Path, proxy: tuple[str, ProxyState]) -> None:
    address, state = proxy
    state.persistent = Fault("status", status=401, method="PUT", path="/manifests/")
    config = tmp_path / "docker-config"
    config.mkdir()
    (config / "config.json").write_text(json.dumps({"auths": {address: {"auth": "dXNlcjpzM2NyM3Q="}}}))
    marker = uuid.uuid4().hex[:10]
    result = run_cli_process(
        ["build", str(_context(tmp_path, marker)), "--push", "-t", f"{address}/ci-toolkit-tests/denied-{marker}:1",
         "--cache-backend", "none"],
        env=_env(tmp_path),
    )  # fmt: skip
    assert result.code == 1, result.err
    assert "retrying" not in result.err
    errors = [ln for ln in result.err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, result.err
    assert "401" in errors[0] and f"the auths entry for {address} in {config / 'config.json'}" in errors[0], errors
    assert "s3cr3t" not in result.err and "dXNlcjpzM2NyM3Q=" not in result.err
    assert len(state.requests("PUT", "/manifests/")) == 1, "the 401 was retried"
