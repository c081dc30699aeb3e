"""A fleet of two engines sharing one registry cache: engine B's first build of a key engine
A exported is warm; A and B exporting the same key at the same moment (5 rounds) never fail
and always leave a cache manifest whose blobs all exist and that another build imports; and
the builder on B is set up through a Docker context and checked by doctor."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import run_cli_process
from tests.integration.fleet.helpers import Fleet, cached, new_fleet, remove_builder, start_engine_b

RUNS = 2  # RUN instructions in the fleet Dockerfile


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    start_engine_b()
    state = new_fleet(tmp_path_factory.mktemp("fleet"))
    yield state
    remove_builder(state.builder_b)


def test_doctor_checks_the_builder_on_engine_b(fleet: Fleet) -> None:
    result = run_cli_process(["doctor", "--builder", fleet.builder_b, "--json"])
    rows = {r["check"]: r for r in __import__("json").loads(result.out)["checks"]}
    row = rows[f"builder {fleet.builder_b}"]
    assert row["ok"], row
    assert "docker driver" in row["detail"] and "fleet-b" in row["detail"]
    missing = run_cli_process(["doctor", "--builder", f"nope-{uuid.uuid4().hex[:6]}"])
    assert missing.code == 3 and "setup-builder" in missing.error_lines[0]


def test_engine_b_first_build_is_warm_from_a_export(fleet: Fleet) -> None:
    stamp = uuid.uuid4().hex
    cold = fleet.build(stamp, on_b=False, key=f"warm-{stamp[:8]}")
    assert cold.code == 0, cold.err[-2000:]
    hits, steps = cached(cold)
    assert hits < steps  # A built it
    warm = fleet.build(stamp, on_b=True, key=f"warm-{stamp[:8]}")
    assert warm.code == 0, warm.err[-2000:]
    # B's first build: both RUN steps from the shared cache (its FROM is a pull, never CACHED),
    # and so the very image A built, random 16 MB layer included.
    assert cached(warm) == (RUNS, steps)
    assert fleet.layers(warm, on_b=True) == fleet.layers(cold, on_b=False)


def test_concurrent_exports_of_one_key_leave_a_usable_cache(fleet: Fleet, tmp_path: Path) -> None:
    for _ in range(5):
        stamp_a, stamp_b = uuid.uuid4().hex, uuid.uuid4().hex
        with ThreadPoolExecutor(2) as pool:
            a, b = pool.map(lambda args: fleet.build(args[0], on_b=args[1]), [(stamp_a, False), (stamp_b, True)])
        assert a.code == 0, a.err[-2000:]
        assert b.code == 0, b.err[-2000:]
        assert fleet.manifest_blobs_missing(f"cache-{fleet.key}") == []
        # A third build imports the key (and does not export; import_only fails the test if the
        # import or the build fails): the winner's content, built on the engine that did not build
        # it, takes every RUN step from the shared cache; the loser's stamp finds nothing.
        cross = [fleet.import_only(stamp_a, on_b=True), fleet.import_only(stamp_b, on_b=False)]
        assert sorted(cross) == [0, RUNS], cross
