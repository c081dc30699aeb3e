"""A second run of the project's own setup on a ready machine checks and installs nothing; its
extras (hub images, extra engines) come up once, stay, and never disturb the first engine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO

STATE = Path(os.environ.get("CI_TOOLKIT_TESTBED_DIR", "/var/lib/ci-toolkit-testbed"))
# Names of our own: other suites and benchmarks use fleet, classic, bench.
ENGINE, CLASSIC, RESTARTED, PRIVATE = "testeng", "testengc", "testengr", "testengd"


def _run(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, text=True, timeout=600)


def _bootstrap(*args: str, state: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CI_TOOLKIT_TESTBED_DIR": str(state)} if state else None
    proc = subprocess.run(["scripts/bootstrap", *args], cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc


def _forget(engine: str, state: Path = STATE) -> None:
    """After the engine is down: its data root and exec root too, so test engines leave nothing."""
    shutil.rmtree(state / "engines" / engine, ignore_errors=True)
    shutil.rmtree(f"/run/ci-toolkit-engines/{engine}", ignore_errors=True)


def _docker(*args: str, engine: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("DOCKER_HOST", None)
    if engine:
        env["DOCKER_HOST"] = f"unix:///run/ci-toolkit-engines/{engine}/docker.sock"
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, env=env)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status)
    except OSError:
        return 0


def _wait_status(url: str, seconds: float = 15) -> int:
    deadline = time.monotonic() + seconds
    while (code := _status(url)) != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    return code


def _docker0_up() -> bool:
    out = subprocess.run(["ip", "-j", "-4", "addr", "show", "dev", "docker0"], capture_output=True, text=True)
    return out.returncode == 0 and any(json.loads(out.stdout or "[]"))


def test_bootstrap_on_a_ready_machine_installs_and_starts_nothing() -> None:
    proc = _run("scripts/bootstrap")
    assert proc.returncode == 0, proc.stderr
    assert "installing" not in proc.stderr
    assert "starting" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("bootstrap: ready")


def test_venv_is_not_reinstalled_when_pyproject_is_unchanged() -> None:
    proc = _run(". scripts/lib/venv.sh && ensure_venv")
    assert proc.returncode == 0, proc.stderr
    assert "installing" not in proc.stderr


def test_arm64_emulation_runs_busybox_from_the_offline_hub() -> None:
    proc = subprocess.run(
        ["docker", "run", "--rm", "--platform", "linux/arm64", "busybox", "uname", "-m"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.stdout.strip() == "aarch64", proc.stderr


@pytest.mark.parametrize(
    "args", [["--with", "nothing"], ["--bogus"], ["--engine", "docker0"], ["--engine", "A b"], ["--no-snapshotter"]]
)
def test_bad_arguments_are_bad_input(args: list[str]) -> None:
    proc = subprocess.run(["scripts/bootstrap", *args], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ")


# ---------------------------------------------------------------- hub images


def test_registry_image_serves_v2_from_a_container() -> None:
    _bootstrap("--with", "registry")
    name = f"ci-toolkit-test-registry-{uuid.uuid4().hex[:8]}"
    started = _docker("run", "-d", "-q", "--name", name, "-p", "127.0.0.1:0:5000", "registry:2")
    try:
        assert started.returncode == 0, started.stderr
        port = _docker("port", name, "5000/tcp").stdout.splitlines()[0].strip()
        assert _wait_status(f"http://{port}/v2/") == 200
    finally:
        _docker("rm", "-f", name)


def test_debian_image_is_built_once_and_runs_trixie() -> None:
    _bootstrap("--with", "debian")
    began = time.monotonic()
    again = _bootstrap("--with", "debian")
    assert time.monotonic() - began < 30
    assert "already present" in again.stderr
    assert "debootstrap" not in again.stderr
    assert "pushing" not in again.stderr
    assert (STATE / "cache" / "debian-trixie-amd64.tar").stat().st_size > 10_000_000
    proc = _docker("run", "--rm", "debian:trixie", "cat", "/etc/debian_version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith("13"), proc.stdout


# ---------------------------------------------------------------- extra engines


@pytest.fixture(scope="module")
def engine() -> Iterator[str]:
    _bootstrap("--engine", ENGINE)
    try:
        yield ENGINE
    finally:
        _bootstrap("--down", "--engine", ENGINE)
        _forget(ENGINE)


def test_engine_has_its_own_data_root_and_socket(engine: str) -> None:
    own = _docker("info", "--format", "{{.DockerRootDir}} {{.DriverStatus}}", engine=engine)
    main = _docker("info", "--format", "{{.DockerRootDir}}")
    assert own.returncode == 0, own.stderr
    root, _, status = own.stdout.strip().partition(" ")
    assert root == str(STATE / "engines" / engine / "data")
    assert root != main.stdout.strip()
    assert "io.containerd.snapshotter.v1" in status


def test_second_run_leaves_a_running_engine_alone(engine: str) -> None:
    proc = _bootstrap("--engine", engine)
    assert "starting" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"bootstrap: engine {engine} ready: unix:///run/ci-toolkit-engines/{engine}/docker.sock"
    )


def _build_busybox(engine: str, ctx: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN echo {uuid.uuid4().hex} >/stamp\n")
    tag = f"ci-toolkit-test-boot-{uuid.uuid4().hex[:8]}:latest"
    proc = _docker("buildx", "build", "-t", tag, *extra, str(ctx), engine=engine)
    _docker("rmi", tag, engine=engine)
    return proc


def test_engine_builds_from_busybox_and_exports_a_local_cache(engine: str, tmp_path: Path) -> None:
    proc = _build_busybox(engine, tmp_path / "ctx", "--cache-to", f"type=local,dest={tmp_path / 'cache'}")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "cache" / "index.json").read_text())["manifests"]


def test_engine_containers_reach_as_far_as_the_first_engines(engine: str) -> None:
    routes = json.loads(subprocess.run(["ip", "-j", "route", "show", "default"], capture_output=True, text=True).stdout)
    gateway = routes[0]["gateway"]
    ping = ["run", "--rm", "busybox", "ping", "-c1", "-W3", gateway]
    # Where the first engine's containers reach the gateway, the extra engine's must too; where
    # they cannot (a host that drops it), neither may differ: the extra engine reaches as far.
    first = _docker(*ping)
    proc = _docker(*ping, engine=engine)
    assert (proc.returncode == 0) == (first.returncode == 0), proc.stdout + proc.stderr


def test_classic_engine_runs_beside_the_snapshotter_engine(engine: str, tmp_path: Path) -> None:
    _bootstrap("--engine", CLASSIC, "--no-snapshotter")
    try:
        info = _docker("info", "--format", "{{.Driver}} {{.DockerRootDir}}", engine=CLASSIC)
        assert info.stdout.split() == ["overlay2", str(STATE / "engines" / CLASSIC / "data")], info.stderr
        built = _build_busybox(CLASSIC, tmp_path)
        assert built.returncode == 0, built.stderr
    finally:
        _bootstrap("--down", "--engine", CLASSIC)
        _forget(CLASSIC)
    assert not Path(f"/run/ci-toolkit-engines/{CLASSIC}/docker.sock").exists()
    assert _docker("version", engine=engine).returncode == 0


def test_stopping_and_restarting_an_engine_leaves_the_first_engine_working() -> None:
    name = f"ci-toolkit-test-boot-{uuid.uuid4().hex[:8]}"
    started = _docker("run", "-d", "--name", name, "busybox", "sleep", "300")
    assert started.returncode == 0, started.stderr
    try:
        for _ in range(2):  # the second start finds the network store of the first
            _bootstrap("--engine", RESTARTED)
            _docker("run", "-d", "--stop-timeout", "2", "busybox", "sleep", "300", engine=RESTARTED)  # stops with it
            down = _bootstrap("--down", "--engine", RESTARTED)
            assert "warning" not in down.stderr
            assert _docker0_up()
            assert subprocess.run(["ip", "link", "show", RESTARTED], capture_output=True).returncode != 0
            assert _docker("exec", name, "ping", "-c1", "-W2", "172.17.0.1").returncode == 0
            fresh = _docker("run", "--rm", "busybox", "true")
            assert fresh.returncode == 0, fresh.stderr
        assert _docker("version").returncode == 0
    finally:
        _docker("rm", "-f", name)
        _forget(RESTARTED)


def test_down_stops_the_engines_of_its_own_state_dir(tmp_path: Path) -> None:
    # A private state dir: --down stops what that bootstrap started (only this engine; the shared
    # engine and registries were already up, so it started nothing else) and leaves the rest.
    up = _bootstrap("--engine", PRIVATE, state=tmp_path)
    assert [ln for ln in up.stderr.splitlines() if "starting" in ln] == [f"bootstrap: starting engine {PRIVATE}"]
    try:
        down = _bootstrap("--down", state=tmp_path)
        assert f"engine {PRIVATE} stopped" in down.stderr
        assert _docker("version", engine=PRIVATE).returncode != 0
        assert subprocess.run(["ip", "link", "show", PRIVATE], capture_output=True).returncode != 0
        assert _docker0_up()
        assert _docker("run", "--rm", "busybox", "true").returncode == 0
        assert _status("http://127.0.0.1:5001/v2/") == 200
    finally:
        _bootstrap("--down", "--engine", PRIVATE, state=tmp_path)
        _forget(PRIVATE, tmp_path)
