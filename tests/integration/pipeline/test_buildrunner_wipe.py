"""run.caches survive an engine wipe: they live in the toolkit's cache store on the host, so a
runner whose engine lost every image, container, volume and build cache still restores them.

This test wipes the engine it runs against (`docker system prune -af --volumes`, `docker
buildx prune -af`): run it only against a private engine, e.g.
`scripts/bootstrap --engine NAME` and DOCKER_HOST=unix:///run/ci-toolkit-engines/NAME/docker.sock.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.integration.pipeline.test_buildrunner import EXAMPLES, BuildrunnerProject


def _wipe() -> None:
    for argv in (["docker", "system", "prune", "-af", "--volumes"], ["docker", "buildx", "prune", "-af"]):
        subprocess.run(argv, check=True, capture_output=True)


def test_run_cache_survives_an_engine_wipe(tmp_path: Path) -> None:
    target = tmp_path / "caches"
    shutil.copytree(EXAMPLES / "caches", target)
    proj = BuildrunnerProject(dir=target, cache_root=tmp_path / "cache")
    first = proj.run("run")
    assert first.code == 0, first.err[-3000:]
    assert proj.out("before.txt").strip() == "none"
    _wipe()
    images = subprocess.run(["docker", "image", "ls", "-q"], capture_output=True, text=True, check=True)
    assert images.stdout.strip() == ""  # the engine holds nothing any more
    second = proj.run("run")
    assert second.code == 0, second.err[-3000:]
    assert proj.out("before.txt").split() == ["run"]
    assert proj.out("m2-before.txt").strip().isdigit()
