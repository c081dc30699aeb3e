"""`ci-toolkit doctor` against the real test bed, and with the engine out of reach."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import run_cli_process
from tests.integration.conftest import HUB_REGISTRY, MIRROR_REGISTRY, PUSH_REGISTRY

REGISTRIES = f"insecure-registries={PUSH_REGISTRY},{HUB_REGISTRY},{MIRROR_REGISTRY}"


def test_doctor_reports_the_test_bed_ok(tmp_path: Path) -> None:
    result = run_cli_process(["--json", "--set", REGISTRIES, "doctor"], cwd=tmp_path)
    assert result.code == 0, result.err
    checks = {c["check"]: c for c in json.loads(result.out)["checks"]}
    for name in (
        "engine",
        "buildx",
        "containerd image store",
        "emulation linux/arm64",
        f"registry {PUSH_REGISTRY}",
        f"registry {HUB_REGISTRY}",
        f"registry {MIRROR_REGISTRY}",
    ):
        assert checks[name]["ok"], checks[name]


def test_doctor_table_is_human_readable(tmp_path: Path) -> None:
    result = run_cli_process(["--set", REGISTRIES, "doctor"], cwd=tmp_path)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert any(line.startswith("OK") and "engine" in line for line in lines)
    assert not any(line.startswith(("MISSING", "WARN")) for line in lines)


def test_doctor_without_engine_exits_3_with_one_line(tmp_path: Path) -> None:
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    result = run_cli_process(["doctor"], env=env, cwd=tmp_path)
    assert result.code == 3
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "engine" in errors[0] and "scripts/bootstrap" in errors[0]
    assert "Traceback" not in result.err


def test_doctor_reports_a_dead_registry(tmp_path: Path) -> None:
    result = run_cli_process(["--set", "build-registry=127.0.0.1:1", "doctor"], cwd=tmp_path)
    assert result.code == 3
    assert "registry 127.0.0.1:1" in result.err
