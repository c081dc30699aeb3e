"""Signals during `ci-toolkit run` (a real process): everything removed, exit 128+N."""

from __future__ import annotations

import signal
import time
import uuid

import pytest

from ci_toolkit.containers import labels
from tests.integration.containers.helpers import (
    client,
    force_remove,
    nothing,
    resources,
    start_cli,
    wait_for,
)


def _running_command(job: str) -> list[dict[str, object]]:
    found: list[dict[str, object]] = client().api.containers(
        filters={"label": [f"ci-toolkit.job-id={job}", "ci-toolkit.role=run"], "status": "running"}
    )
    return found


def _any_resource(job: str) -> bool:
    return not nothing(resources(f"ci-toolkit.job-id={job}"))


def _start_job(image: str, job: str) -> tuple[object, list[str]]:
    args = ["run", "--set", f"job-id={job}", "--service", f"{image}:db", "--service", f"{image}:cache"]
    return start_cli([*args, "busybox", "sleep", "600"]), args


def test_sigterm_with_two_services_ten_times(http_image: str) -> None:
    for attempt in range(10):
        job = f"test-sig-{uuid.uuid4().hex[:8]}"
        proc, _ = _start_job(http_image, job)
        try:
            # Alternate the moment: mid-setup (first resource exists) or with the command running.
            if attempt % 2:
                wait_for(lambda job=job: _any_resource(job), 30, "the first resource")  # type: ignore[misc]
            else:
                wait_for(lambda job=job: bool(_running_command(job)), 30, "the command container")  # type: ignore[misc]
            if attempt == 0:
                _check_labels(job, proc.pid)
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=10)
            elapsed = time.monotonic() - started
            err = proc.stderr.read() if proc.stderr else ""
            assert code == 143, f"attempt {attempt}: exit {code}: {err}"
            assert elapsed < 10
            left = resources(f"ci-toolkit.job-id={job}")
            assert nothing(left), f"attempt {attempt}: left behind {left}"
            assert "Traceback" not in err
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            force_remove(f"ci-toolkit.job-id={job}")


def _check_labels(job: str, pid: int) -> None:
    """Every resource carries the DESIGN label set with the owner's pid and start time."""
    api = client().api
    query = {"label": [f"ci-toolkit.job-id={job}"]}
    items = [c["Labels"] for c in api.containers(all=True, filters=query)]
    items += [n["Labels"] for n in api.networks(filters=query)]
    items += [v["Labels"] for v in api.volumes(filters=query)["Volumes"] or []]
    roles = set()
    kinds = (len(api.networks(filters=query)), len(api.volumes(filters=query)["Volumes"] or []))
    assert kinds[0] == 1 and kinds[1] == 2, "one network; one labelled volume per service (VOLUME /data)"
    for tags in items:
        assert {k.removeprefix("ci-toolkit.") for k in tags if k.startswith("ci-toolkit.")} >= set(labels.KEYS)
        assert tags["ci-toolkit.managed"] == "true"
        assert tags["ci-toolkit.pid"] == str(pid)
        assert tags["ci-toolkit.pid-start"] == labels.process_start(pid)
        assert tags["ci-toolkit.host-id"] == labels.host_id()
        roles.add(tags["ci-toolkit.role"])
    assert roles == {"run", "service"}


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_sigint_and_sighup(http_image: str, signum: int, code: int) -> None:
    job = f"test-sig-{uuid.uuid4().hex[:8]}"
    proc, _ = _start_job(http_image, job)
    try:
        wait_for(lambda: bool(_running_command(job)), 30, "the command container")
        proc.send_signal(signum)
        assert proc.wait(timeout=10) == code
        assert nothing(resources(f"ci-toolkit.job-id={job}"))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        force_remove(f"ci-toolkit.job-id={job}")


def test_a_second_signal_during_cleanup_does_not_abort_it(http_image: str) -> None:
    job = f"test-sig-{uuid.uuid4().hex[:8]}"
    proc, _ = _start_job(http_image, job)
    try:
        wait_for(lambda: bool(_running_command(job)), 30, "the command container")
        proc.send_signal(signal.SIGTERM)
        for second in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            time.sleep(0.05)
            if proc.poll() is None:
                proc.send_signal(second)
        assert proc.wait(timeout=10) == 143
        assert nothing(resources(f"ci-toolkit.job-id={job}"))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        force_remove(f"ci-toolkit.job-id={job}")
