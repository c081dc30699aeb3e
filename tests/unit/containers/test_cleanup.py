"""The cleanup session's own logic: signal handling and an unreachable engine. No engine
here: the engine-facing behaviour is in tests/integration/containers/test_run_signals.py."""

from __future__ import annotations

import io
import os
import signal

import pytest
import requests

from ci_toolkit.containers.cleanup import Session
from ci_toolkit.core.errors import Stopped
from ci_toolkit.core.report import Reporter


def _unreachable() -> object:
    raise requests.exceptions.ConnectionError("connection refused")


def test_unreachable_engine_is_one_warning_line() -> None:
    err = io.StringIO()
    session = Session(Reporter(stream=err), prefix="ci-toolkit", client_factory=_unreachable)
    with session:
        session.containers.append(session.name("run"))
        session.networks.append(session.name("net"))
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: cleanup could not reach the Docker engine")
    assert "sweep --stale" in lines[0]
    assert not session.containers and not session.networks, "nothing is removed twice"


def test_sigterm_raises_stopped_and_a_second_signal_is_deferred() -> None:
    calls: list[int] = []

    def factory() -> object:
        # Arrives while teardown runs: must not abort it.
        os.kill(os.getpid(), signal.SIGTERM)
        calls.append(1)
        raise requests.exceptions.ConnectionError("gone")

    before = signal.getsignal(signal.SIGTERM)
    session = Session(Reporter(stream=io.StringIO()), prefix="p", client_factory=factory)
    with pytest.raises(Stopped) as info, session:
        session.containers.append(session.name("run"))
        os.kill(os.getpid(), signal.SIGTERM)
    assert info.value.exit_code == 143
    assert calls == [1], "teardown ran to the end despite the second signal"
    assert signal.getsignal(signal.SIGTERM) is before, "handlers restored"


def test_signal_during_a_clean_exit_still_stops_after_cleanup() -> None:
    def factory() -> object:
        os.kill(os.getpid(), signal.SIGHUP)
        raise requests.exceptions.ConnectionError("gone")

    session = Session(Reporter(stream=io.StringIO()), prefix="p", client_factory=factory)
    with pytest.raises(Stopped) as info, session:
        session.volumes.append(session.name("vol"))
    assert info.value.exit_code == 129


def test_names_carry_the_session_token() -> None:
    session = Session(Reporter(stream=io.StringIO()), prefix="my prefix!")
    name = session.name("svc")
    assert name.startswith(session.token) and session.token.startswith("my-prefix")
    assert session.name("svc") != name
