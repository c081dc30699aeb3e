"""`ci-toolkit sweep` on the real engine: job sweeps, stale sweeps beside a live job,
unmanaged look-alikes, dry runs, and two sweeps at once."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from ci_toolkit.containers import labels
from tests.helpers import run_cli, run_cli_process
from tests.integration.containers.helpers import (
    HTTP_SERVICE,
    built_image,
    client,
    force_remove,
    nothing,
    resources,
    start_cli,
    wait_for,
)


@pytest.fixture()
def tag() -> Iterator[str]:
    """A user label unique to this test, so sweeps never reach other engineers' resources."""
    value = uuid.uuid4().hex[:10]
    yield value
    force_remove(f"sweeptest={value}")


def _make(
    tag: str, job: str, *, managed: bool = True, host: str | None = None, count: int = 2, created: str | None = None
) -> None:
    """Containers (created, not started), a network and a volume labelled as the toolkit does,
    owned by this (live) test process unless another host is given."""
    api = client().api
    ctx = labels.label_context(prefix="ci-toolkit", job_id=job, ci="local", run_id="", user_labels={"sweeptest": tag})
    tags = ctx.labels(role="run", step="t")
    if host is not None:
        tags["ci-toolkit.host-id"] = host
    if not managed:
        del tags["ci-toolkit.managed"]
    if created is not None:
        tags["ci-toolkit.created"] = created
    suffix = uuid.uuid4().hex[:8]
    for i in range(count):
        api.create_container("busybox", command=["true"], labels=tags, name=f"sweeptest-{suffix}-{i}")
    api.create_network(f"sweeptest-{suffix}", labels=tags)
    api.create_volume(name=f"sweeptest-{suffix}", labels=tags)


def _sweep(*args: str) -> dict[str, object]:
    result = run_cli(["sweep", "--json", *args])
    assert result.code == 0, result.err
    data: dict[str, object] = json.loads(result.out)
    return data


def test_job_id_sweep_removes_exactly_that_job(tag: str) -> None:
    _make(tag, "job-a")
    _make(tag, "job-b")
    _make(tag, "job-a", managed=False, count=1)  # a look-alike: matching labels, not ours
    data = _sweep("--job-id", "job-a", "--label", f"sweeptest={tag}")
    removed = [r for r in data["resources"] if r["action"] == "removed"]  # type: ignore[attr-defined]
    assert {r["kind"] for r in removed} == {"container", "network", "volume"} and len(removed) == 4
    assert nothing(resources(f"sweeptest={tag}", "ci-toolkit.job-id=job-a", "ci-toolkit.managed=true"))
    left_b = resources(f"sweeptest={tag}", "ci-toolkit.job-id=job-b")
    assert [len(v) for v in left_b.values()] == [2, 1, 1]
    unmanaged = resources(f"sweeptest={tag}", "ci-toolkit.job-id=job-a")
    assert [len(v) for v in unmanaged.values()] == [1, 1, 1], "unmanaged resources are never touched"


def test_unmanaged_lookalikes_survive_stale_sweeps_too(tag: str) -> None:
    _make(tag, "job-x", managed=False, host="elsewhere", count=1)
    time.sleep(1.1)
    data = _sweep("--stale", "--older-than", "1s", "--label", f"sweeptest={tag}")
    assert data["resources"] == []
    assert [len(v) for v in resources(f"sweeptest={tag}").values()] == [1, 1, 1]


def test_dry_run_lists_and_removes_nothing(tag: str) -> None:
    _make(tag, "job-d")
    data = _sweep("--job-id", "job-d", "--label", f"sweeptest={tag}", "--dry-run")
    assert data["dry_run"] is True
    assert {r["action"] for r in data["resources"]} == {"would-remove"}  # type: ignore[attr-defined]
    assert len(data["resources"]) == 4  # type: ignore[arg-type]
    assert [len(v) for v in resources(f"sweeptest={tag}").values()] == [2, 1, 1]


def test_stale_keeps_live_owners_and_other_hosts_unless_old(tag: str) -> None:
    _make(tag, "live-here")  # owned by this live pytest process
    _make(tag, "far-away", host="0000000000000000", count=1)
    data = _sweep("--stale", "--label", f"sweeptest={tag}")
    assert {r["action"] for r in data["resources"]} == {"kept"}  # type: ignore[attr-defined]
    reasons = {r["job_id"]: r["reason"] for r in data["resources"]}  # type: ignore[attr-defined]
    assert "alive" in reasons["live-here"] and "another host" in reasons["far-away"]
    time.sleep(1.1)
    data = _sweep("--stale", "--older-than", "1s", "--label", f"sweeptest={tag}")
    removed = {r["job_id"] for r in data["resources"] if r["action"] == "removed"}  # type: ignore[attr-defined]
    assert removed == {"far-away"}
    assert [len(v) for v in resources(f"sweeptest={tag}").values()] == [2, 1, 1]


def test_two_sweeps_at_once_both_succeed(tag: str) -> None:
    _make(tag, "job-race", count=30)
    args = ["sweep", "--job-id", "job-race", "--label", f"sweeptest={tag}", "--json"]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: run_cli_process(args), range(2)))
    assert [r.code for r in results] == [0, 0], [r.err for r in results]
    actions = [r["action"] for res in results for r in json.loads(res.out)["resources"]]
    assert set(actions) <= {"removed", "gone"} and actions.count("removed") >= 32
    assert nothing(resources(f"sweeptest={tag}"))
    again = _sweep("--job-id", "job-race", "--label", f"sweeptest={tag}")
    assert again["resources"] == [], "idempotent"


def test_sigkilled_job_is_swept_and_the_live_job_is_not(tag: str) -> None:
    with built_image(HTTP_SERVICE) as image:
        procs = {}
        for job in ("killed", "live"):
            procs[job] = start_cli(
                [
                    "run",
                    "--set",
                    f"job-id={job}-{tag}",
                    "--container-labels",
                    f"sweeptest={tag}",
                    "--service",
                    f"{image}:db",
                    "--service",
                    f"{image}:cache",
                    "busybox",
                    "sleep",
                    "600",
                ]
            )
        try:
            for job in procs:
                wait_for(
                    lambda job=job: bool(  # type: ignore[misc]
                        client().api.containers(
                            filters={"label": [f"ci-toolkit.job-id={job}-{tag}", "ci-toolkit.role=run"]}
                        )
                    ),
                    30,
                    f"job {job}",
                )
            before_live = resources(f"ci-toolkit.job-id=live-{tag}")
            procs["killed"].send_signal(signal.SIGKILL)
            procs["killed"].wait(timeout=10)
            assert not nothing(resources(f"ci-toolkit.job-id=killed-{tag}")), "SIGKILL leaves orphans behind"
            data = _sweep("--stale", "--label", f"sweeptest={tag}")
            assert nothing(resources(f"ci-toolkit.job-id=killed-{tag}"))
            assert resources(f"ci-toolkit.job-id=live-{tag}") == before_live
            kept = {r["job_id"] for r in data["resources"] if r["action"] == "kept"}  # type: ignore[attr-defined]
            assert kept == {f"live-{tag}"}
            assert procs["live"].poll() is None, "the live job keeps running"
            procs["live"].send_signal(signal.SIGTERM)
            assert procs["live"].wait(timeout=10) == 143
            assert nothing(resources(f"sweeptest={tag}"))
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


def test_sweep_without_a_job_id_or_stale_is_bad_input() -> None:
    result = run_cli(["sweep"], env={})
    assert result.code == 2
    assert len(result.error_lines) == 1 and "--stale" in result.error_lines[0]


def test_stale_removes_other_hosts_resources_after_six_hours_by_default(tag: str) -> None:
    _make(tag, "far-old", host="1111111111111111", count=1, created="2000-01-01T00:00:00Z")
    _make(tag, "far-new", host="2222222222222222", count=1)
    data = _sweep("--stale", "--label", f"sweeptest={tag}")
    actions = {(r["job_id"], r["kind"]): r["action"] for r in data["resources"]}  # type: ignore[attr-defined]
    assert {a for (job, _), a in actions.items() if job == "far-old"} == {"removed"}
    assert {a for (job, _), a in actions.items() if job == "far-new"} == {"kept"}
