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


class _Engine:
    """Records removals; a network refuses while a container that uses it is still there, and
    the first removal of ``flaky`` answers 500 (the engine busy)."""

    def __init__(self, containers: dict[str, tuple[str, ...]], flaky: str = "") -> None:
        import threading

        self.containers = dict(containers)
        self.flaky = flaky
        self.removed: list[str] = []
        self.lock = threading.Lock()

    def remove_container(self, ident: str, **_: object) -> None:
        import docker.errors

        with self.lock:
            if ident == self.flaky:
                self.flaky = ""
                raise docker.errors.APIError("busy", response=_Status(500), explanation="engine busy")
            self.containers.pop(ident)
            self.removed.append(ident)

    def remove_network(self, ident: str) -> None:
        import docker.errors

        with self.lock:
            if any(ident in uses for uses in self.containers.values()):
                raise docker.errors.APIError("in use", response=_Status(403), explanation="has active endpoints")
            self.removed.append(ident)

    def remove_volume(self, ident: str, **_: object) -> None:
        self.remove_network(ident)


class _Status:
    def __init__(self, code: int) -> None:
        self.status_code = code
        self.reason = ""


def _resource(kind: str, ident: str, uses: tuple[str, ...] = ()) -> Resource:
    return Resource(kind=kind, id=ident, name=ident, labels={}, created=NOW, uses=uses)


def test_networks_and_volumes_go_after_their_containers_and_engine_errors_are_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ci_toolkit.containers import sweep

    monkeypatch.setattr(sweep, "BACKOFF", 0.001)
    uses = {f"c{i}": (f"n{i}", "shared-vol") for i in range(20)}
    engine = _Engine(uses, flaky="c3")
    plan = [(_resource("container", c, u), True, "job") for c, u in uses.items()]
    plan += [(_resource("network", f"n{i}"), True, "job") for i in range(20)]
    plan += [(_resource("volume", "shared-vol"), True, "job"), (_resource("network", "lonely"), True, "job")]
    plan += [(_resource("network", "theirs"), False, "belongs to job other")]
    outcomes = sweep._apply(engine, plan, dry_run=False)
    assert [o.name for o in outcomes] == [r.name for r, _, _ in plan]
    assert {o.name: o.action for o in outcomes} == {
        **{r.name: "removed" for r, remove, _ in plan if remove},
        "theirs": "kept",
    }
    order = engine.removed
    assert all(order.index(f"c{i}") < order.index(f"n{i}") for i in range(20))
    assert order.index("shared-vol") > max(order.index(c) for c in uses)
    assert "c3" in order  # the 500 was retried, not reported


def test_an_engine_that_stays_broken_is_a_failure_after_the_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    from ci_toolkit.containers import sweep

    monkeypatch.setattr(sweep, "BACKOFF", 0.001)
    calls: list[str] = []

    class Broken:
        def remove_container(self, ident: str, **_: object) -> None:
            import docker.errors

            calls.append(ident)
            raise docker.errors.APIError("boom", response=_Status(500), explanation="driver failed")

    [outcome] = sweep._apply(Broken(), [(_resource("container", "c"), True, "job")], dry_run=False)
    assert (outcome.action, outcome.reason) == ("failed", "driver failed")
    assert calls == ["c"] * sweep.ATTEMPTS
