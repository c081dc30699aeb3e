"""The end-of-build block and step summary: per image its tags, each platform's digest and
size, cache use, duration and the run's link; a pipeline gets one row per step."""

from __future__ import annotations

from pathlib import Path

from ci_toolkit.build.summary import BuildView, log_block, markdown, size_text
from ci_toolkit.pipeline.run import RunReport, StepOutcome, summary_markdown
from ci_toolkit.registry.describe import PlatformImage

VIEW = BuildView(
    refs=("r/app:1", "r/app:latest"),
    digest="sha256:" + "0" * 64,
    platforms=(
        PlatformImage(platform="linux/amd64", digest="sha256:" + "a" * 64, size=3 * 2**20),
        PlatformImage(platform="linux/arm64", digest="sha256:" + "b" * 64, size=1536),
    ),
    cache_backend="local",
    cache_key="app",
    cache_hits=3,
    cache_steps=4,
    cache={"imported_bytes": 5 * 2**20, "export": "committed"},
    seconds=12.34,
    build_seconds=11.0,
    run_url="https://github.com/o/r/actions/runs/77",
)


def test_log_block_names_every_platform() -> None:
    text = log_block(VIEW)
    assert "built r/app:1, r/app:latest" in text
    assert f"linux/amd64: sha256:{'a' * 64} (3.0 MiB)" in text
    assert f"linux/arm64: sha256:{'b' * 64} (1.5 KiB)" in text
    assert "3/4 steps cached, 5.0 MiB imported, exported" in text
    assert "time: 12.3s (buildx 11.0s)" in text and "run: https://github.com/o/r/actions/runs/77" in text


def test_markdown_has_a_row_per_platform_and_the_index_digest() -> None:
    text = markdown(VIEW)
    rows = [line for line in text.splitlines() if line.startswith("| ") and "sha256" in line]
    assert len(rows) == 2 and "`r/app:1`<br>`r/app:latest`" in rows[0] and "3.0 MiB" in rows[0]
    assert f"Index digest: `sha256:{'0' * 64}`" in text
    assert size_text(999) == "999 B"


def test_pipeline_summary_row_per_step() -> None:
    report = RunReport(
        outcomes=(
            StepOutcome(
                name="base",
                status="built",
                image="r/base:1@sha256:" + "c" * 64,
                platforms={"linux/amd64": "sha256:" + "d" * 64},
                cache={"hits": 2, "steps": 2, "imported_bytes": 2**20},
                seconds=3.0,
            ),
            StepOutcome(name="test", status="skipped", reason="not selected"),
        ),
        artifacts=Path("artifacts.json"),
    )
    text = summary_markdown(report, "https://ci/run/1")
    assert "| base | built | `r/base:1@sha256:" in text and "linux/amd64 `sha256:dddddddddddd`" in text
    assert "2/2 cached, 1.0 MiB imported" in text
    assert "| test | skipped | not selected |" in text and text.endswith("Run: https://ci/run/1")
