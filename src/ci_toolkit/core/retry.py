"""One retry policy for every registry conversation: the registry client's own requests and
the tools that talk to registries for us (buildx pushing, pulling, exporting a cache).

A transient fault is worth another attempt: a 5xx, a 429 (after its Retry-After), a
connection reset, refused or cut short (EOF), a timeout. Anything else (401/403, 404, a
manifest the registry calls invalid) fails at once. Waits are jittered so a fleet of jobs
that failed together does not retry in lockstep, and bounded by settings ``retries`` and
``retry-max-wait``. Each retry is one log line: ``retrying push of REF (2/3) after 500 from
HOST``."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from ci_toolkit.core.errors import EXIT_FAILED, ToolkitError
from ci_toolkit.core.report import Reporter
from ci_toolkit.core.settings import Settings
from ci_toolkit.core.units import parse_duration

TYPE_CHECKING = False  # not typing's: importing typing costs every command's start-up (CONTRIBUTING)
if TYPE_CHECKING:
    from typing import TypeVar

    T = TypeVar("T")
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how long to retry a transient registry fault."""

    attempts: int = 4
    """Attempts in all: one plus setting ``retries``."""
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0
    """Setting ``retry-max-wait``: no single wait is longer; a server asking for more is down."""
    connect_timeout: float = 5.0
    read_timeout: float = 30.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None:
            return min(self.max_retry_after, retry_after + rng.uniform(0, 0.1 * retry_after + 0.05))
        ceiling = min(self.max_backoff, self.max_retry_after, self.backoff * 2.0**attempt)
        # "Equal jitter": always wait some, never all jobs in lockstep.
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


def policy_from(retries: int, max_wait: float) -> RetryPolicy:
    return RetryPolicy(attempts=max(0, retries) + 1, max_retry_after=max_wait)


def settings_policy(settings: Settings) -> RetryPolicy:
    """The policy settings ``retries`` and ``retry-max-wait`` ask for."""
    if settings.retries < 0:
        raise ToolkitError.bad_input(f"setting retries must be 0 or more, got {settings.retries}")
    return policy_from(settings.retries, parse_duration(settings.retry_max_wait, "setting retry-max-wait"))


@dataclass(frozen=True)
class Fault:
    """A transient fault read from a tool's error text: ``500 from 127.0.0.1:5000``."""

    cause: str
    retry_after: float | None = None

    def __str__(self) -> str:
        return self.cause


# Patterns, not compiled ones: only a failed command reads them, and re compiles (and caches)
# each at its first use instead of at every command's start.
_URL_HOST = r"https?://([^/\s\"']+)"
_STATUS = (
    r"(?:unexpected status(?: from \w+ request to \S+)?|status code|response status code|HTTP)[: ]+\s*"
    r"(408|429|50[0234])\b|\b(50[0234]|429) (?:Internal Server Error|Bad Gateway|Service Unavailable|"
    r"Gateway Timeout|Too Many Requests)|(500) invalid checksum digest format|toomanyrequests"
)
_NETWORK = (
    ("connection reset by peer", "connection reset"),
    ("broken pipe", "connection reset"),
    ("connection refused", "connection refused"),
    ("unexpected eof", "EOF"),
    (": eof", "EOF"),
    ("i/o timeout", "timeout"),
    ("tls handshake timeout", "timeout"),
    ("context deadline exceeded", "timeout"),
    ("client.timeout exceeded", "timeout"),
    ("server closed idle connection", "connection reset"),
)
_PERMANENT = r"\b(401|403)\b|unauthorized|denied|insufficient_scope|not found"


def transient_fault(text: str) -> Fault | None:
    """The transient registry fault that ``text`` (buildx/docker output) reports, if any.
    An authentication or not-found answer in the same text wins: retrying cannot fix it."""
    if re.search(_PERMANENT, text, re.IGNORECASE):
        return None
    host = re.search(_URL_HOST, text)
    where = f" from {host.group(1)}" if host else ""
    match = re.search(_STATUS, text, re.IGNORECASE)
    if match:
        status = next((g for g in match.groups() if g), "429")
        return Fault(f"{status}{where}", 1.0 if status == "429" else None)
    lowered = text.lower()
    for needle, cause in _NETWORK:
        if needle in lowered:
            return Fault(f"{cause}{where}")
    return None


def with_retries(
    attempt: Callable[[], T],
    *,
    policy: RetryPolicy,
    reporter: Reporter,
    what: str,
    classify: Callable[[ToolkitError], Fault | None],
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> T:
    """Call ``attempt`` until it succeeds, fails for good, or the attempts are spent. A
    failure ``classify`` recognises as transient is retried after a jittered wait."""
    rng = rng or random.Random()
    for number in range(1, policy.attempts + 1):
        try:
            return attempt()
        except ToolkitError as exc:
            fault = classify(exc) if exc.exit_code == EXIT_FAILED else None
            if fault is None or number >= policy.attempts:
                raise
            retries = policy.attempts - 1
            reporter.info(f"retrying {what} ({number}/{retries}) after {fault}")
            sleep(policy.delay(number - 1, fault.retry_after, rng))
    raise AssertionError("unreachable")  # pragma: no cover
