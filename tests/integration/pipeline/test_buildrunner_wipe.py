"""run.caches survive an engine wipe: they live in the toolkit's cache store on the host, so a
runner whose engine lost every image, container, volume and build cache still restores them.

The wipe (`docker system prune -af --volumes`, `docker buildx prune -af`) runs against a
private engine that `scripts/bootstrap --engine` starts, never the test bed's main engine, whose
images and session fixtures other tests rely on.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.integration.pipeline.test_buildrunner import EXAMPLES, BuildrunnerProject

ENGINE = "runcache-wipe"


@pytest.fixture(scope="module")
def private_engine() -> dict[str, str]:
    proc = subprocess.run(
        [str(REPO / "scripts" / "bootstrap"), "--engine", ENGINE], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {"DOCKER_HOST": f"unix:///run/ci-toolkit-engines/{ENGINE}/docker.sock"}


def _wipe(engine: dict[str, str]) -> None:
    env = {**os.environ, **engine}
    for argv in (["docker", "system", "prune", "-af", "--volumes"], ["docker", "buildx", "prune", "-af"]):
        subprocess.run(argv, check=True, capture_output=True, env=env)


def test_run_cache_survives_an_engine_wipe(tmp_path: Path, private_engine: dict[str, str]) -> None:
    target = tmp_path / "caches"
    shutil.copytree(EXAMPLES / "caches", target)
    proj = BuildrunnerProject(dir=target, cache_root=tmp_path / "cache")
    first = proj.run("run", env=private_engine)
    assert first.code == 0, first.err[-3000:]
    assert proj.out("before.txt").strip() == "none"
    _wipe(private_engine)
    images = subprocess.run(
        ["docker", "image", "ls", "-q"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **private_engine},
    )
    assert images.stdout.strip() == ""  # the engine holds nothing any more
    second = proj.run("run", env=private_engine)
    assert second.code == 0, second.err[-3000:]
    assert proj.out("before.txt").split() == ["run"]
    assert proj.out("m2-before.txt").strip().isdigit()
