"""The sweep's decision for one listed resource: pure logic, no engine."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ci_toolkit.containers.sweep import Resource, SweepRequest, check_request, decide
from ci_toolkit.core.errors import ToolkitError

NOW = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
HOST = "abcdabcdabcdabcd"


def _res(created_ago: float = 60, **tags: str) -> Resource:
    base = {"p.managed": "true", "p.job-id": "j1", "p.host-id": HOST, "p.pid": "100", "p.pid-start": "555"}
    base.update(tags)
    base = {k: v for k, v in base.items() if v != "-"}
    return Resource(kind="container", id="x", name="x", labels=base, created=NOW - timedelta(seconds=created_ago))


def _decide(res: Resource, alive: bool = False, **req: object) -> tuple[bool, str]:
    request = SweepRequest(prefix="p", **req)  # type: ignore[arg-type]
    return decide(res, request, host_id=HOST, now=NOW, alive=lambda pid, start: alive)


def test_unmanaged_is_never_selected() -> None:
    assert _decide(_res(**{"p.managed": "-"}), job_id="j1") == (False, "not managed by ci-toolkit")
    assert _decide(_res(**{"p.managed": "false"}), stale=True)[0] is False


def test_job_selection() -> None:
    assert _decide(_res(), alive=True, job_id="j1")[0] is True
    assert _decide(_res(), job_id="j2") == (False, "belongs to job j1")


def test_stale_on_this_host_depends_on_the_owner() -> None:
    assert _decide(_res(), alive=True, stale=True) == (False, "owner pid 100 is alive")
    remove, why = _decide(_res(), alive=False, stale=True)
    assert remove and "100" in why


def test_other_hosts_need_an_explicit_age() -> None:
    far = _res(created_ago=7200, **{"p.host-id": "ffff"})
    assert _decide(far, stale=True)[0] is False
    assert _decide(far, stale=True, older_than=3600.0)[0] is True
    assert _decide(far, stale=True, older_than=3 * 3600.0)[0] is False


def test_labels_must_match() -> None:
    assert _decide(_res(team="a"), stale=True, labels={"team": "b"})[0] is False


def test_nothing_selected_is_bad_input() -> None:
    with pytest.raises(ToolkitError) as info:
        check_request(SweepRequest(prefix="p"))
    assert info.value.exit_code == 2
