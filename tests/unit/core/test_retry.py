"""The shared retry policy: which faults are transient, and one log line per retry."""

from __future__ import annotations

import io
import random

import pytest

from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.report import Reporter
from ci_toolkit.core.retry import RetryPolicy, transient_fault, with_retries

TRANSIENT = {
    "ERROR: failed to push 127.0.0.1:5000/a:1: unexpected status from PUT request to "
    "http://127.0.0.1:5000/v2/a/manifests/1: 500 Internal Server Error": "500 from 127.0.0.1:5000",
    "failed to copy: httpReadSeeker: failed open: unexpected status code "
    "https://r.example/v2/a/blobs/sha256:ab: 503 Service Unavailable": "503 from r.example",
    "ERROR: failed to solve: failed to do request: Put http://127.0.0.1:5000/v2/a/blobs/uploads/x: "
    "read tcp 127.0.0.1:1->127.0.0.1:5000: read: connection reset by peer": "connection reset from 127.0.0.1:5000",
    "failed commit on ref layer-sha256:ab: unexpected EOF": "EOF",
    "429 Too Many Requests from https://mirror.example/v2/": "429 from mirror.example",
    "HEAD https://127.0.0.1:5000/v2/a/manifests/1: 500 invalid checksum digest format": "500 from 127.0.0.1:5000",
    "dial tcp 10.0.0.1:443: i/o timeout": "timeout",
}
PERMANENT = [
    "unexpected status from PUT request to http://h:5000/v2/a/manifests/1: 401 Unauthorized",
    "push access denied, repository does not exist or may require authorization: server message: insufficient_scope",
    "failed to resolve source metadata for docker.io/library/nosuch:latest: not found",
    'process "/bin/sh -c exit 1" did not complete successfully: exit code: 1',
]


@pytest.mark.parametrize(("text", "cause"), TRANSIENT.items())
def test_transient_faults_are_recognised(text: str, cause: str) -> None:
    fault = transient_fault(text)
    assert fault is not None and str(fault) == cause


@pytest.mark.parametrize("text", PERMANENT)
def test_permanent_failures_are_not_retried(text: str) -> None:
    assert transient_fault(text) is None


def test_with_retries_logs_one_line_per_retry_and_succeeds() -> None:
    stream = io.StringIO()
    reporter = Reporter(stream=stream)
    calls = []
    waits: list[float] = []

    def attempt() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ToolkitError.failed("unexpected status from PUT request to http://h:5000/v2/x: 500 Internal")
        return "ok"

    result = with_retries(
        attempt,
        policy=RetryPolicy(attempts=4, max_retry_after=2.0),
        reporter=reporter,
        what="push of h:5000/x:1",
        classify=lambda exc: transient_fault(exc.message),
        sleep=waits.append,
        rng=random.Random(1),
    )
    assert result == "ok"
    assert stream.getvalue().splitlines() == [
        "retrying push of h:5000/x:1 (1/3) after 500 from h:5000",
        "retrying push of h:5000/x:1 (2/3) after 500 from h:5000",
    ]
    assert len(waits) == 2 and all(0 < w <= 2.0 for w in waits)


def test_with_retries_gives_up_after_the_attempts_and_never_retries_bad_input() -> None:
    reporter = Reporter(stream=io.StringIO())
    calls: list[int] = []

    def failing() -> None:
        calls.append(1)
        raise ToolkitError.failed("connection reset by peer")

    with pytest.raises(ToolkitError):
        with_retries(failing, policy=RetryPolicy(attempts=3), reporter=reporter, what="x",
                     classify=lambda e: transient_fault(e.message), sleep=lambda _s: None)  # fmt: skip
    assert len(calls) == 3

    def bad() -> None:
        calls.append(2)
        raise ToolkitError.bad_input("connection reset by peer")

    with pytest.raises(ToolkitError):
        with_retries(bad, policy=RetryPolicy(attempts=3), reporter=reporter, what="x",
                     classify=lambda e: transient_fault(e.message), sleep=lambda _s: None)  # fmt: skip
    assert calls.count(2) == 1


def test_retry_after_is_honoured_but_bounded() -> None:
    policy = RetryPolicy(max_retry_after=5.0)
    rng = random.Random(0)
    assert 1.0 <= policy.delay(0, 1.0, rng) <= 1.2
    assert policy.delay(0, 100.0, rng) == 5.0
