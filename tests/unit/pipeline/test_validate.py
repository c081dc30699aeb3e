"""`ci-toolkit pipeline validate`: invalid pipeline files exit 2 with one `error:` line that
names the step and the key; valid ones list their steps in run order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_cli

HEAD = "build-registry: 127.0.0.1:5000\n"
BASE = "FROM busybox\\nRUN true\\n"


def _step(name: str, body: str) -> str:
    return f"  {name}:\n" + "".join(f"    {line}\n" for line in body.strip("\n").splitlines())


def _inline(name: str, dockerfile: str = BASE, extra: str = "") -> str:
    return _step(name, f'build:\n  dockerfile: "{dockerfile}"\n{extra}')


INVALID: list[tuple[str, str, list[str]]] = [
    (
        "depends-cycle",
        "steps:\n" + _inline("a", extra="") + "    depends: [b]\n" + _inline("b") + "    depends: [a]\n",
        ["steps.b.depends[0]", "dependency cycle: a -> b -> a"],
    ),
    ("self-dependency", "steps:\n" + _inline("a") + "    depends: [a]\n", ["steps.a.depends[0]", "cycle: a -> a"]),
    (
        "cycle-through-step-images",
        "steps:\n" + _inline("a", "FROM {{ steps.b.image }}\\n") + _inline("b", "FROM {{ steps.a.image }}\\n"),
        ["steps.b.build.dockerfile", "dependency cycle"],
    ),
    (
        "unknown-depends",
        "steps:\n" + _inline("a") + "    depends: [nope]\n",
        ["steps.a.depends[0]", "unknown step 'nope'"],
    ),
    (
        "unknown-step-image",
        "steps:\n" + _inline("a", "FROM {{ steps.nope.image }}\\n"),
        ["steps.a.build.dockerfile", "unknown step 'nope'"],
    ),
    (
        "unknown-step-image-in-build-args",
        "steps:\n" + _inline("a", extra="  build-args:\n    BASE: '{{ steps.ghost.digest }}'"),
        ["steps.a.build.build-args.BASE", "unknown step 'ghost'"],
    ),
    (
        "step-image-of-a-run-only-step",
        "steps:\n" + _step("r", "run:\n  image: busybox\n  cmd: 'true'") + _inline("a", "FROM {{ steps.r.image }}\\n"),
        ["steps.a.build.dockerfile", "step 'r' builds no image"],
    ),
    (
        "dockerfile-path-and-inline-text",
        "steps:\n" + _step("a", "build:\n  dockerfile: Dockerfile\n  dockerfile-inline: 'FROM busybox'"),
        ["steps.a.build.dockerfile-inline", "not both"],
    ),
    (
        "bad-platform",
        "steps:\n" + _inline("a", extra="  platforms: [linux/amd64, linux/sparc]"),
        ["steps.a.build.platforms[1]", "linux/sparc"],
    ),
    (
        "platform-without-os",
        "steps:\n" + _inline("a", extra="  platforms: [arm64]"),
        ["steps.a.build.platforms[0]", "'arm64'"],
    ),
    (
        "duplicate-platform",
        "steps:\n" + _inline("a", extra="  platforms: [linux/arm64, linux/arm64]"),
        ["steps.a.build.platforms[1]", "duplicate"],
    ),
    ("empty-platforms", "steps:\n" + _inline("a", extra="  platforms: []"), ["steps.a.build.platforms", "empty"]),
    (
        "undefined-template-variable",
        "steps:\n" + _inline("a", "FROM busybox:{{ NO_SUCH_VAR }}\\n"),
        ["steps.a.build.dockerfile", "undefined template variable", "NO_SUCH_VAR"],
    ),
    (
        "unknown-step-attribute",
        "steps:\n" + _inline("b") + _inline("a", "FROM {{ steps.b.sha }}\\n"),
        ["steps.a.build.dockerfile", "steps.b.sha"],
    ),
    (
        "multi-platform-step-retags-another-steps-image",
        "steps:\n"
        + _inline("a", extra="  platforms: [linux/amd64, linux/arm64]")
        + "    push: 127.0.0.1:5000/x/base\n"
        + _inline("b", "FROM {{ steps.a.image }}\\n", "  platforms: [linux/amd64, linux/arm64]")
        + "    push: 127.0.0.1:5000/x/base\n",
        ["steps.b.push", "also pushed by step 'a'", "re-tag"],
    ),
    ("empty-steps", "steps: {}\n", ["steps", "must not be empty"]),
    ("null-steps", "steps:\n", ["steps", "expected a mapping"]),
    ("steps-as-list", "steps:\n  - a\n", ["steps", "expected a mapping"]),
    ("empty-step", "steps:\n  a: {}\n", ["steps.a", "must not be empty"]),
    (
        "step-without-build-or-run",
        "steps:\n" + _inline("a") + _step("b", "depends: [a]"),
        ["steps.b", "'build' or 'run'"],
    ),
    ("push-without-build", "steps:\n" + _step("a", "push: 127.0.0.1:5000/x/a"), ["steps.a.push", "'build'"]),
    (
        "unknown-build-key",
        "steps:\n" + _step("a", "build:\n  dockerfle: 'FROM busybox'"),
        ["steps.a.build.dockerfle", "did you mean 'dockerfile'"],
    ),
    ("unknown-step-key", "steps:\n" + _step("a", "bulid: {}"), ["steps.a.bulid", "did you mean 'build'"]),
    ("bad-step-name", "steps:\n" + _inline("Bad_Name"), ["steps.Bad_Name", "invalid name"]),
    (
        "nothing-to-push",
        "steps:\n" + _inline("a") + "    push:\n      repository: 127.0.0.1:5000/x/a\n      add-build-tag: false\n",
        ["steps.a.push.tags", "nothing to push"],
    ),
    (
        "bad-push-tag",
        "steps:\n" + _inline("a") + "    push:\n      repository: 127.0.0.1:5000/x/a\n      tags: ['no spaces']\n",
        ["steps.a.push.tags[0]", "'no spaces'"],
    ),
    ("bad-repository", "steps:\n" + _inline("a") + "    push: 'Upper/Case'\n", ["steps.a.push", "'Upper/Case'"]),
    (
        "bad-cache-backend",
        "steps:\n" + _inline("a", extra="  cache:\n    backend: s3"),
        ["steps.a.build.cache.backend", "local, registry, gha, none"],
    ),
    (
        "build-arg-not-a-scalar",
        "steps:\n" + _inline("a", extra="  build-args:\n    X: [1, 2]"),
        ["steps.a.build.build-args.X", "expected"],
    ),
    (
        "missing-dockerfile",
        "steps:\n" + _step("a", "build:\n  dockerfile: nope/Dockerfile"),
        ["steps.a.build.dockerfile", "file not found: nope/Dockerfile"],
    ),
    ("missing-context-dir", "steps:\n" + _step("a", "build:\n  path: nowhere"), ["steps.a.build.path", "not found"]),
    (
        "depends-not-a-list",
        "steps:\n" + _inline("a") + _inline("b") + "    depends: a\n",
        ["steps.b.depends", "a list"],
    ),
    ("run-without-image", "steps:\n" + _step("a", "run:\n  cmd: 'true'"), ["steps.a.run", "'image'"]),
    ("bad-secret", "steps:\n" + _inline("a", extra="  secrets: ['src=/x']"), ["steps.a.build.secrets[0]", "id="]),
    ("empty-target", "steps:\n" + _inline("a", extra="  target: ''"), ["steps.a.build.target", "empty"]),
    (
        "platform-the-base-step-does-not-build",
        "steps:\n"
        + _inline("a", extra="  platforms: [linux/amd64]")
        + _inline("b", "FROM {{ steps.a.image }}\\n", "  platforms: [linux/amd64, linux/arm64]"),
        ["steps.b.build.platforms", "linux/arm64 is not built by step 'a'"],
    ),
    (
        "promote-unknown-step",
        "steps:\n" + _inline("a") + "promote:\n  b: [latest]\n",
        ["promote.b", "unknown step 'b'"],
    ),
    (
        "promote-step-without-push",
        "steps:\n" + _inline("a") + "promote:\n  a: [latest]\n",
        ["promote.a", "pushes nothing"],
    ),
    (
        "promote-bad-tag",
        "steps:\n" + _inline("a") + "    push: 127.0.0.1:5000/x/a\npromote:\n  a: ['la test']\n",
        ["promote.a[0]", "'la test'"],
    ),
    (
        "run-bad-pull-policy",
        "steps:\n" + _step("a", "run:\n  image: busybox\n  pull-policy: sometimes"),
        ["steps.a.run.pull-policy", "always, if-not-present, never"],
    ),
]


@pytest.mark.parametrize(("text", "needles"), [(t, n) for _, t, n in INVALID], ids=[i for i, _, _ in INVALID])
def test_invalid_pipeline_exits_2_naming_step_and_key(tmp_path: Path, text: str, needles: list[str]) -> None:
    (tmp_path / "ci-toolkit.yaml").write_text(text if text.startswith("build-registry") else HEAD + text)
    result = run_cli(["pipeline", "validate"], cwd=tmp_path)
    assert result.code == 2, result.err
    assert len(result.error_lines) == 1, result.err
    assert "Traceback" not in result.err
    line = result.error_lines[0]
    assert "ci-toolkit.yaml" in line
    for needle in needles:
        assert needle in line, line


def test_at_least_twenty_invalid_files() -> None:
    assert len(INVALID) >= 20


def test_unknown_step_on_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "ci-toolkit.yaml").write_text(HEAD + "steps:\n" + _inline("a"))
    result = run_cli(["pipeline", "plan", "--step", "zz"], cwd=tmp_path)
    assert result.code == 2
    assert result.error_lines == [result.error_lines[0]] and "--step zz: no such step" in result.error_lines[0]


def test_no_project_file(tmp_path: Path) -> None:
    result = run_cli(["pipeline", "validate"], cwd=tmp_path)
    assert result.code == 2 and "no ci-toolkit.yaml" in result.error_lines[0]


def test_valid_file_lists_steps_in_dependency_order(tmp_path: Path) -> None:
    text = (
        HEAD
        + "steps:\n"
        + _inline("test", "FROM {{ steps.app.image }}\\n")
        + _inline("app", "FROM 127.0.0.1:5000/x/base:{{ BUILD_TAG }}\\n", "  platforms: [linux/amd64, linux/arm64/v8]")
        + _inline("base", extra="  platforms: [linux/amd64, linux/arm64/v8]")
        + "    push: 127.0.0.1:5000/x/base\n"
        + _inline("other")
    )
    (tmp_path / "ci-toolkit.yaml").write_text(text)
    result = run_cli(["--json", "pipeline", "validate"], cwd=tmp_path)
    assert result.code == 0, result.err
    assert json.loads(result.out)["steps"] == ["base", "app", "test", "other"]


def test_seed_examples_are_valid() -> None:
    examples = Path(__file__).resolve().parents[3] / "examples" / "pipelines"
    for name in ("seed-inline", "seed-multistage", "three-step"):
        result = run_cli(["pipeline", "validate"], cwd=examples / name)
        assert result.code == 0, (name, result.err)


def test_run_step_services_take_gitlab_mappings(tmp_path: Path) -> None:
    run = (
        "run:\n  image: busybox\n  cmd: wget -qO- http://db:5432\n  services:\n    - redis:7::cache\n"
        "    - name: postgres:16\n      alias: db\n      command: [postgres, -c, fsync=off]\n"
        "      variables: {POSTGRES_PASSWORD: x}\n      wait_for: 5432\n"
    )
    (tmp_path / "ci-toolkit.yaml").write_text(HEAD + "steps:\n" + _step("check", run))
    assert run_cli(["pipeline", "validate"], cwd=tmp_path).code == 0
    (tmp_path / "ci-toolkit.yaml").write_text(HEAD + "steps:\n" + _step("check", run.replace("wait_for", "waitfor")))
    result = run_cli(["pipeline", "validate"], cwd=tmp_path)
    assert result.code == 2 and "steps.check.run.services" in result.err, result.err


def test_a_tag_base_without_build_registry_is_valid(tmp_path: Path) -> None:
    """Cross-step bases need no setting any more: the run picks the engine or a temporary
    registry (pipeline.bases), so validate accepts it."""
    text = (
        "build-registry: ''\nsteps:\n"
        + _inline("a")
        + "    push: 127.0.0.1:5000/x/a\n"
        + _inline("b", "FROM 127.0.0.1:5000/x/a:{{ BUILD_TAG }}\\n")
    )
    (tmp_path / "ci-toolkit.yaml").write_text(text)
    result = run_cli(["pipeline", "validate"], cwd=tmp_path)
    assert result.code == 0, result.err
