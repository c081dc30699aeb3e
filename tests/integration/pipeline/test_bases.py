"""Cross-step bases with no settings: the seed's two-step example as the seed writes it runs
with no build-registry on the test bed for two platforms, kept in the engine (containerd
store + docker driver) or through a temporary registry on loopback that is gone afterwards,
also when the job is killed (sweep). build-registry, when set, wins."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO, run_cli_process
from tests.integration.pipeline.helpers import Project, copy_example, run_arm64


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    proj = copy_example("seed-no-settings", tmp_path)
    yield proj
    proj.remove_images()


def _registries(run_id: str) -> list[str]:
    out = subprocess.run(
        [
            "docker",
            "ps",
            "-aq",
            "--filter",
            "label=ci-toolkit.role=registry",
            "--filter",
            f"label=ci-toolkit.run-id={run_id}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def test_seed_runs_with_no_settings_kept_in_the_engine(project: Project) -> None:
    plan = project.run("plan", "--json")
    assert plan.code == 0, plan.err
    assert json.loads(plan.out)["bases"]["path"] == "engine"
    result = project.run("run")
    assert result.code == 0, result.err[-3000:]
    steps = project.artifacts()
    assert [s["status"] for s in steps.values()] == ["ok", "ok"]
    image = steps["build-from-base"]["image"]
    assert "@" not in image  # a local name: BuildKit would look a digest up in a registry
    assert run_arm64(image, "uname -m").strip() == "aarch64"
    cmd = subprocess.run(
        ["docker", "image", "inspect", image, "--format", "{{json .Config.Cmd}}"], capture_output=True, text=True
    )
    assert "/do-something-else" in cmd.stdout


def test_temporary_registry_carries_the_bases_and_is_removed(project: Project) -> None:
    run_id = f"bases-{project.build_number}"
    env = {"CI_TOOLKIT_CROSS_STEP_BASES": "temporary-registry", "BUILD_ID": run_id}
    plan = project.run("plan", env=env)
    assert plan.code == 0 and "bases: temporary registry" in plan.out, plan.err
    result = project.run("run", env=env)
    assert result.code == 0, result.err[-3000:]
    steps = project.artifacts()
    for step in steps.values():
        assert sorted(step["platforms"]) == ["linux/amd64", "linux/arm64"]
        assert step["image"].startswith("127.0.0.1:")
    assert "--build-context test-image1:" in result.err
    assert _registries(run_id) == []


def test_a_killed_run_leaves_its_registry_to_sweep(project: Project) -> None:
    run_id = f"killed-{project.build_number}"
    env = {
        **os.environ,
        "CI_TOOLKIT_CROSS_STEP_BASES": "temporary-registry",
        "BUILD_ID": run_id,
        "BUILD_NUMBER": project.build_number,
        "CI_TOOLKIT_CACHE_ROOT": str(project.cache_root),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "ci_toolkit", "pipeline", "run"],
        cwd=project.dir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not _registries(run_id) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = _registries(run_id)
    assert len(left) == 1
    swept = run_cli_process(["sweep", "--stale", "--label", f"ci-toolkit.run-id={run_id}"], env={})
    assert swept.code == 0, swept.err
    assert _registries(run_id) == []


def test_build_registry_wins(project: Project) -> None:
    plan = project.run("plan", "--json", env={"CI_TOOLKIT_BUILD_REGISTRY": "127.0.0.1:5000"})
    assert plan.code == 0, plan.err
    assert json.loads(plan.out)["bases"]["path"] == "build-registry"


CLASSIC = "bases-classic"


@pytest.fixture(scope="module")
def classic_engine() -> str:
    """A second engine with the classic image store (kept running for reuse: bootstrap is
    idempotent, and starting one costs tens of seconds)."""
    proc = subprocess.run(
        [str(REPO / "scripts" / "bootstrap"), "--engine", CLASSIC, "--no-snapshotter"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return f"unix:///run/ci-toolkit-engines/{CLASSIC}/docker.sock"


def test_seed_runs_with_no_settings_on_the_classic_image_store(project: Project, classic_engine: str) -> None:
    run_id = f"classic-{project.build_number}"
    env = {"DOCKER_HOST": classic_engine, "BUILD_ID": run_id}
    plan = project.run("plan", env=env)
    assert plan.code == 0, plan.err
    assert plan.out.startswith("bases: temporary registry: ") and "classic image store" in plan.out
    result = project.run("run", env=env)
    assert result.code == 0, result.err[-3000:]
    steps = project.artifacts()
    for step in steps.values():
        assert sorted(step["platforms"]) == ["linux/amd64", "linux/arm64"]
    # build-from-base built each platform on the base's index, pinned by digest.
    assert f"=docker-image://{steps['build-base']['image']}" in result.err
    left = subprocess.run(
        ["docker", "-H", classic_engine, "ps", "-aq", "--filter", f"label=ci-toolkit.run-id={run_id}"],
        capture_output=True,
        text=True,
    )
    assert left.stdout.split() == []
