"""Label set, owner identity and liveness, durations."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ci_toolkit.containers import labels
from ci_toolkit.core import units
from ci_toolkit.core.errors import ToolkitError


def _ctx(**kw: object) -> labels.LabelContext:
    args: dict[str, object] = {"prefix": "acme", "job_id": "gl-7", "ci": "gitlab", "run_id": "99", "user_labels": {}}
    args.update(kw)
    return labels.label_context(**args)  # type: ignore[arg-type]


def test_full_label_set_with_user_labels() -> None:
    got = _ctx(user_labels={"team": "infra"}).labels(role="service", step="test")
    assert got["team"] == "infra"
    assert {k.removeprefix("acme.") for k in got if k.startswith("acme.")} == set(labels.KEYS)
    assert got["acme.managed"] == "true"
    assert got["acme.job-id"] == "gl-7"
    assert got["acme.pid"] == str(os.getpid())
    assert got["acme.pid-start"] == labels.process_start(os.getpid())
    assert got["acme.role"] == "service" and got["acme.step"] == "test"
    assert units.parse_time(got["acme.created"]) is not None


def test_user_labels_cannot_claim_the_prefix() -> None:
    with pytest.raises(ToolkitError) as info:
        _ctx(user_labels={"acme.managed": "true"})
    assert info.value.exit_code == 2


def test_parse_pairs() -> None:
    assert units.parse_pairs(["a=1,b=2", "c=3"], "--x") == {"a": "1", "b": "2", "c": "3"}
    with pytest.raises(ToolkitError):
        units.parse_pairs(["novalue"], "--x")


def _fake_proc(tmp_path: Path, pid: int, state: str, start: str) -> Path:
    d = tmp_path / str(pid)
    d.mkdir()
    rest = " ".join([state] + ["0"] * 18 + [start] + ["0"] * 10)
    (d / "stat").write_text(f"{pid} (weird ) name) {rest}\n")
    return tmp_path


def test_liveness_uses_pid_start(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path, 42, "S", "12345")
    assert labels.process_start(42, proc) == "12345"
    assert labels.owner_alive(42, "12345", proc)
    assert not labels.owner_alive(42, "999", proc), "a recycled pid is not the owner"
    assert not labels.owner_alive(43, "12345", proc), "no such process"


def test_zombie_is_gone(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path, 7, "Z", "5")
    assert not labels.owner_alive(7, "5", proc)


def test_this_process_is_alive() -> None:
    owner = labels.current_owner()
    assert labels.owner_alive(owner.pid, owner.pid_start)
    assert owner.host_id == labels.host_id() and len(owner.host_id) == 16
