"""A three-step pipeline (base -> app -> test, two platforms) pushed to the local registry,
then rerun entirely from the local cache store after the engine's images and build cache
are wiped."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.integration.pipeline.helpers import copy_example, index_platforms, run_arm64


def test_three_steps_push_then_rerun_from_the_local_cache_store(tmp_path: Path) -> None:
    proj = copy_example("three-step", tmp_path)
    try:
        first = proj.run("run", "--push")
        assert first.code == 0, first.err[-3000:]
        steps = proj.artifacts()
        assert [s["status"] for s in steps.values()] == ["ok", "ok", "ok"]
        pushed = f"127.0.0.1:5000/ci-toolkit-examples/app:{proj.build_tag}@{steps['app']['digest']}"
        assert pushed in steps["app"]["refs"]
        assert index_platforms(pushed) == ["linux/amd64", "linux/arm64"]
        assert "on written by base" in run_arm64(steps["app"]["image"], "/app/hello.sh")

        # The wipe: every image this pipeline made, and the engine's build cache.
        proj.remove_images()
        subprocess.run(["docker", "buildx", "prune", "-af"], check=True, capture_output=True)

        second = proj.run("run")
        assert second.code == 0, second.err[-3000:]
        rerun = proj.artifacts()
        instructions = _instructions(second.err)
        # base: RUN x2 platforms; app: COPY + RUN x2; test: RUN (native only)
        assert len(instructions) == 7, instructions
        assert all(state == "CACHED" for state in instructions.values()), instructions
        for name, step in rerun.items():
            cache = step["cache"]
            assert cache["backend"] == "local" and cache["key"] == f"three-step-{name}"
            # FROM lines are resolved, not "cached"; every instruction after them is a hit.
            assert cache["hits"] >= len(step["platforms"]), (name, cache)
        # Same layers, so the same per-platform content: the app's arm64 variant still runs.
        assert "aarch64" in run_arm64(rerun["app"]["image"], "/app/hello.sh")
    finally:
        proj.remove_images()


def _instructions(log: str) -> dict[str, str]:
    """'<build> #N [platform i/n] RUN ...' -> CACHED or DONE, from buildx's plain progress."""
    names: dict[str, str] = {}
    state: dict[str, str] = {}
    build = 0
    for line in log.splitlines():
        if line.startswith("+ docker buildx build"):
            build += 1
        if m := re.match(r"^#(\d+) (\[[^\]]*\d+/\d+\] (?:RUN|COPY|ADD) .*)$", line):
            names[f"{build}#{m.group(1)}"] = m.group(2)
        elif m := re.match(r"^#(\d+) (CACHED|DONE)", line):
            state[f"{build}#{m.group(1)}"] = m.group(2)
    return {f"{key} {name}": state.get(key, "?") for key, name in names.items()}
