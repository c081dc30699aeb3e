"""Pipeline overhead, side by side on the test bed.

P1: a cached rerun of the three-step example (base -> app -> test, two platforms) with
    `ci-toolkit pipeline run`, against the same three `docker buildx build --push` calls typed
    by hand with the digests already known (engine cache warm, no cache export). Ours also
    exports and swaps a local cache generation per step and reads each pushed index.
    Goal: at most 2x.
P2: `ci-toolkit pipeline plan` of the same example against `ci-toolkit config show` in the
    same directory (which loads and renders the same project file): what validating and
    planning three steps costs on top of loading the configuration. Goal: at most 2x.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from benchmarks.common import Ratio, interleaved

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "pipelines" / "three-step"


def _cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    proc = subprocess.run(
        [sys.executable, "-m", "ci_toolkit", *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        proc.check_returncode()
    return proc


def _raw_builds(project: Path, tag: str, steps: dict[str, dict[str, str]]) -> list[list[str]]:
    prefix = f"127.0.0.1:5000/ci-toolkit-pipeline/{project.name}"
    base, app = steps["base"]["image"], steps["app"]["image"]
    common = ["docker", "buildx", "build", "--progress", "quiet", "--push"]
    base_file = 'FROM docker.io/busybox:latest\nRUN echo "written by base" > /base.txt\n'
    test_file = (
        f"FROM 127.0.0.1:5000/ci-toolkit-examples/app:{tag}\n"
        "RUN test -f /base.txt && test -f /app/hello.sh && /app/hello.sh > /test-result.txt\n"
    )
    (project / "base.Dockerfile").write_text(base_file)
    (project / "test.Dockerfile").write_text(test_file)
    return [
        [*common, "--platform", "linux/amd64,linux/arm64", "-f", "base.Dockerfile", "-t", f"{prefix}/base:raw", "."],
        [
            *common,
            "--platform",
            "linux/amd64,linux/arm64",
            "--build-arg",
            f"BASE_IMAGE={base}",
            "-t",
            f"{prefix}/app:raw",
            "app",
        ],
        [
            *common,
            "-f",
            "test.Dockerfile",
            "--build-context",
            f"127.0.0.1:5000/ci-toolkit-examples/app:{tag}=docker-image://{app}",
            "-t",
            f"{prefix}/test:raw",
            ".",
        ],
    ]


def run() -> list[Ratio]:
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        project = Path(tmp) / "three-step"
        shutil.copytree(EXAMPLE, project)
        tag = f"b{uuid.uuid4().hex[:8]}"
        env = {"BUILD_NUMBER": tag, "CI_TOOLKIT_CACHE_ROOT": str(Path(tmp) / "cache")}
        _cli(["pipeline", "run", "--push"], project, env)  # warm: cache, registry, push targets
        steps = json.loads((project / "artifacts.json").read_text())["steps"]
        commands = _raw_builds(project, tag, steps)

        def ours() -> None:
            _cli(["-q", "pipeline", "run"], project, env)

        def raw() -> None:
            for argv in commands:
                subprocess.run(argv, cwd=project, check=True, capture_output=True)

        raw()
        t_ours, t_raw = interleaved(ours, raw, repeat=3)

        def plan() -> None:
            _cli(["pipeline", "plan"], project, env)

        def config_show() -> None:
            _cli(["config", "show"], project, env)

        t_plan, t_config = interleaved(plan, config_show, repeat=7)
        refs = {r.split("@")[0] for s in steps.values() for r in s.get("refs", [])}
        refs |= {f"127.0.0.1:5000/ci-toolkit-pipeline/three-step/{n}:raw" for n in ("base", "app", "test")}
        subprocess.run(["docker", "image", "rm", "--force", *sorted(refs)], capture_output=True)
    return [
        Ratio(
            "pipeline P1: cached 3-step run / 3 raw buildx builds",
            t_ours / t_raw,
            "<= 2",
            f"{t_ours:.2f} s",
            f"{t_raw:.2f} s",
        ),
        Ratio(
            "pipeline P2: plan (3 steps) / config show",
            t_plan / t_config,
            "<= 2",
            f"{t_plan * 1000:.0f} ms",
            f"{t_config * 1000:.0f} ms",
        ),
    ]
