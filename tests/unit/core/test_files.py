"""Writes are confined and safe: the atomic writer never follows a link it did not create,
`cache ls` and the store's lock refuse planted symlinks, project-file paths stay inside the
project, and `run` never mounts the host's root or home directory. Each test plants what an
attacker with a local account would plant and checks the victim file is untouched."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest

from ci_toolkit.cache import store as cache_store
from ci_toolkit.core.errors import EXIT_INPUT, ToolkitError
from ci_toolkit.core.files import write_atomic
from tests.helpers import run_cli


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim"
    path.write_text("precious\n")
    return path


def test_a_planted_tmp_symlink_is_never_written_through(tmp_path: Path, victim: Path) -> None:
    target = tmp_path / "out" / "daemon.json"
    target.parent.mkdir()
    (target.parent / ".daemon.json.tmp").symlink_to(victim)  # the fixed name the old code used
    write_atomic(target, "{}\n")
    assert target.read_text() == "{}\n" and victim.read_text() == "precious\n"
    assert sorted(p.name for p in target.parent.iterdir()) == [".daemon.json.tmp", "daemon.json"]


def test_a_symlink_at_the_target_is_replaced_not_followed(tmp_path: Path, victim: Path) -> None:
    target = tmp_path / "config.toml"
    target.symlink_to(victim)
    write_atomic(target, "new\n")
    assert not target.is_symlink() and target.read_text() == "new\n" and victim.read_text() == "precious\n"


def test_only_a_durable_write_is_synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    write_atomic(tmp_path / "record.json", "{}", durable=False)
    assert synced == [] and (tmp_path / "record.json").read_text() == "{}"
    write_atomic(tmp_path / "key", "k\n")
    assert len(synced) == 2  # the file, then its directory (the rename survives a crash)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key", "record.json"]  # no temporary left


def test_an_existing_files_mode_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("old")
    target.chmod(0o600)
    write_atomic(target, "new")
    assert (target.stat().st_mode & 0o777) == 0o600


def test_a_path_that_cannot_hold_a_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ToolkitError) as info:
        write_atomic(tmp_path / "missing-dir" / "f", "x")
    assert info.value.exit_code == EXIT_INPUT and "cannot write" in info.value.message


def test_mirror_render_output_ignores_a_planted_tmp_symlink(tmp_path: Path, victim: Path) -> None:
    (tmp_path / ".daemon.json.tmp").symlink_to(victim)
    res = run_cli(["mirror", "render", "--format", "daemon-json", "-o", "daemon.json"], cwd=tmp_path)
    assert res.code == 0, res.err
    assert victim.read_text() == "precious\n"
    assert "registry-mirrors" in json.loads((tmp_path / "daemon.json").read_text())


def test_cache_ls_refuses_a_symlinked_key_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT\n")
    entry = tmp_path / "root" / "k1"
    entry.mkdir(parents=True)
    (entry / "lock").touch()
    (entry / "key").symlink_to(secret)
    res = run_cli(["cache", "ls", "--json", "--cache-root", str(tmp_path / "root")], cwd=tmp_path)
    assert res.code == 0, res.err
    assert "TOP-SECRET" not in res.out + res.err
    assert [e["key"] for e in json.loads(res.out)["entries"]] == ["k1"]


def test_a_symlinked_lock_is_refused_and_its_target_never_created(tmp_path: Path) -> None:
    entry = tmp_path / "entry"
    entry.mkdir()
    planted = tmp_path / "created-by-us"
    (entry / "lock").symlink_to(planted)
    with pytest.raises(OSError), cache_store.entry_lock(entry, fcntl.LOCK_SH):
        pass
    assert not planted.exists()
    res = run_cli(["cache", "ls", "--json", "--cache-root", str(tmp_path)], cwd=tmp_path)
    assert json.loads(res.out)["entries"] == [] and not planted.exists()


def test_a_raw_pair_on_root_passes_through_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\n")
    before = sorted(os.listdir("/"))
    extra = "--cache-to type=local,dest=/ --cache-from type=local,src=/"
    res = run_cli(["build", "--dry-run", "."], env={"CI_IMAGE_BUILD_EXTRA_ARGS": extra}, cwd=tmp_path)
    assert res.code == 0, res.err
    assert "warning: not managing / as a cache store entry" in res.err and "managing / as" not in res.err.replace(
        "not managing / as", ""
    )
    assert "--cache-to type=local,dest=/ --cache-from type=local,src=/" in res.err
    assert sorted(os.listdir("/")) == before


PROJECT_PATHS = [
    ("path", "app:\n    build:\n      path: ../../../etc\n", "steps.app.build.path"),
    ("dockerfile", "app:\n    build:\n      dockerfile: ../../../../etc/hostname\n", "steps.app.build.dockerfile"),
    ("secret", "app:\n    build:\n      secrets: ['id=x,src=/etc/hostname']\n", "steps.app.build.secrets"),
    ("import", "app:\n    build:\n      import: /etc/hostname\n", "steps.app.build.import"),
    ("workdir", "app:\n    run:\n      image: busybox\n      workdir: /\n", "steps.app.run.workdir"),
    ("files", "app:\n    run:\n      image: busybox\n      files: {/etc/hostname: /x}\n", "steps.app.run.files"),
]


@pytest.mark.parametrize(("name", "steps", "where"), PROJECT_PATHS, ids=[p[0] for p in PROJECT_PATHS])
def test_project_file_paths_stay_inside_the_project(tmp_path: Path, name: str, steps: str, where: str) -> None:
    project = tmp_path / "a" / "b" / "project"
    project.mkdir(parents=True)
    (project / "Dockerfile").write_text("FROM busybox\n")
    (project / "ci-toolkit.yaml").write_text("steps:\n  " + steps)
    res = run_cli(["pipeline", "validate"], cwd=project)
    assert res.code == 2, res.err
    assert len(res.error_lines) == 1 and where in res.err and "outside the project directory" in res.err
    allowed = run_cli(["pipeline", "validate", "--set", "allow-paths-outside-project=true"], cwd=project)
    assert "outside the project directory" not in allowed.err


@pytest.mark.parametrize("workdir", ["/", "HOME", "HOME/.."])
def test_run_never_mounts_root_or_home(tmp_path: Path, workdir: str) -> None:
    home, project = tmp_path / "home", tmp_path / "home" / "project"
    project.mkdir(parents=True)
    path = workdir.replace("HOME", str(home))
    res = run_cli(["run", "--workdir", path, "busybox", "true"], env={"HOME": str(home)}, cwd=project)
    assert res.code == 2 and "root or home directory" in res.err, res.err
    vol = run_cli(["run", "--volume", "/:/host", "busybox", "true"], env={"HOME": str(home)}, cwd=project)
    assert vol.code == 2 and "volume /:/host" in vol.err


def test_a_step_with_workdir_root_is_refused_even_when_paths_outside_are_allowed(tmp_path: Path) -> None:
    (tmp_path / "ci-toolkit.yaml").write_text("steps:\n  app:\n    run:\n      image: busybox\n      workdir: /\n")
    res = run_cli(["pipeline", "run"], env={"CI_TOOLKIT_ALLOW_PATHS_OUTSIDE_PROJECT": "true"}, cwd=tmp_path)
    assert res.code == 2 and "root or home directory" in res.err, res.err


@pytest.mark.parametrize(
    ("file", "text", "needle"),
    [
        ("ci-toolkit.yaml", "allow-paths-outside-project: true\n", "cannot come from the project file"),
        (".env", "CI_TOOLKIT_ALLOW_PATHS_OUTSIDE_PROJECT=true\n", "cannot come from the .env"),
        ("ci-toolkit.yaml", "extra-args-env: CI_COMMIT_MESSAGE\n", "'extra-args-env' cannot come from the project"),
        (".env", "CI_IMAGE_BUILD_EXTRA_ARGS=--output type=local,dest=/\n", ".env sets CI_IMAGE_BUILD_EXTRA_ARGS"),
    ],
)
def test_files_in_the_checkout_cannot_widen_host_access(tmp_path: Path, file: str, text: str, needle: str) -> None:
    (tmp_path / file).write_text(text)
    res = run_cli(["build", "--dry-run", "."], cwd=tmp_path)
    assert res.code == 2 and len(res.error_lines) == 1 and needle in res.err, res.err


def test_trusted_settings_and_extra_args_from_the_ci_configuration_apply(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\n")
    env = {"CI_TOOLKIT_EXTRA_ARGS_ENV": "MY_ARGS", "MY_ARGS": "--ssh default --output type=local,dest=out"}
    res = run_cli(["build", "--dry-run", "."], env=env, cwd=tmp_path)
    assert res.code == 0, res.err
    notices = [ln for ln in res.err.splitlines() if "read or write this host" in ln]
    assert notices == ["notice: build flags that read or write this host: --ssh default; --output type=local,dest=out"]
