"""Releases as a user receives them: `python -m build` makes an sdist and a wheel whose
version is the git tag (and stays right when built again from the sdist, or from a plain
copy with no history), `twine check` accepts them, and the wheel installed into a clean venv
runs `ci-toolkit doctor` and the demo's build against the test bed."""

from __future__ import annotations

import shutil
import sys
import tarfile
from pathlib import Path

import pytest

from tests.integration.ci.test_action_support import (
    base_env,
    build_dist,
    copy_checkout,
    remove_local_images,
    run_checked,
    tagged_checkout,
    unique_repo,
)
from tests.integration.conftest import PUSH_REGISTRY

VERSION = "9.8.7"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """sdist + wheel of this working tree, committed and tagged v9.8.7."""
    source = tagged_checkout(tmp_path_factory.mktemp("release-src"), VERSION)
    return build_dist(source, tmp_path_factory.mktemp("dist"))


def test_sdist_and_wheel_carry_the_tag_version_and_pass_twine(dist: list[Path]) -> None:
    assert [p.name for p in dist] == [f"ci_toolkit-{VERSION}-py3-none-any.whl", f"ci_toolkit-{VERSION}.tar.gz"]
    out = run_checked([str(BIN / "twine"), "check", "--strict", *map(str, dist)])
    assert out.count("PASSED") == 2, out


def test_version_survives_the_tarball_and_a_plain_copy(dist: list[Path], tmp_path: Path) -> None:
    with tarfile.open(dist[1]) as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")
    again = build_dist(tmp_path / "unpacked" / f"ci_toolkit-{VERSION}", tmp_path / "from-sdist")
    assert f"ci_toolkit-{VERSION}-py3-none-any.whl" in [p.name for p in again]
    plain = copy_checkout(tmp_path / "plain")  # no .git, no PKG-INFO: the fallback version
    shutil.rmtree(plain / "src" / "ci_toolkit" / "_version.py", ignore_errors=True)
    assert "ci_toolkit-0.0.0-py3-none-any.whl" in [p.name for p in build_dist(plain, tmp_path / "from-plain")]


def test_wheel_in_a_clean_venv_runs_doctor_and_abuild_dist(dist: list[Path], tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run_checked([sys.executable, "-m", "venv", str(venv)])
    run_checked(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(dist[0])]
    )
    cli = str(venv / "bin" / "ci-toolkit")
    env = base_env(CI_TOOLKIT_INSECURE_REGISTRIES=f"{PUSH_REGISTRY},127.0.0.1:5001,127.0.0.1:5002")
    assert run_checked([cli, "--version"], env=env).strip() == f"ci-toolkit {VERSION}"
    run_checked([cli, "doctor"], env=env)
    project = tmp_path / "hello"
    shutil.copytree(Path(__file__).resolve().parents[2] / "examples" / "hello", project)
    image = f"{unique_repo('release')}:1"
    try:
        out = run_checked(
            [cli, "build", "--load", "-t", image, "--set", f"cache-root={tmp_path / 'cache'}", "."], project, env
        )
    finally:
        remove_local_images([image])
    assert f"built {image}" in out
