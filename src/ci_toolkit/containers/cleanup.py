"""One registry of what this process created, removed on every way out.

``Session`` is a context manager: while it is open, SIGTERM and SIGHUP raise ``Stopped`` and
SIGINT raises KeyboardInterrupt, so the ``finally`` path runs instead of the process dying
with containers left behind. The first signal switches the handlers to *deferring*: a second
signal during teardown (CI runners often send SIGTERM twice, or SIGTERM then SIGINT) is
recorded, not raised, so it cannot abort the removal half-way. We never ``os._exit``:
networks and volumes are removed after the containers that use them.

Names are registered *before* the create call, so a signal that lands between the engine's
answer and our bookkeeping still finds the resource; removal by name tolerates 404. A last
query by the session token in the names catches a create that was still in flight."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from types import FrameType, TracebackType
from typing import Any

from ci_toolkit.core.errors import Stopped, ToolkitError
from ci_toolkit.core.report import Reporter

_SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None), signal.SIGINT) if s)
REMOVE_TIMEOUT = 30
PARALLEL = 16


def is_unreachable(exc: BaseException) -> bool:
    """True when the engine itself cannot be reached (as opposed to refusing one request)."""
    import requests

    return isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError))


@contextlib.contextmanager
def engine_errors(what: str) -> Iterator[None]:
    """The engine's failures as the toolkit's: the engine unreachable is a missing environment
    (3), a request it refuses (or a reply it cuts short) a failed operation (1), a request it
    calls malformed (HTTP 400) bad input (2). Both clients: ``engine.EngineAPI`` and the Docker
    SDK (whose modules are only looked at when something already imported them)."""
    try:
        yield
    except ToolkitError:
        raise
    except Exception as exc:
        failure = _engine_failure(what, exc)
        if failure is None:
            raise
        raise failure from exc


def _engine_failure(what: str, exc: Exception) -> ToolkitError | None:
    from ci_toolkit.containers.engine import EngineError
    from ci_toolkit.core.http import TransportError

    unreachable = ToolkitError.missing(f"{what}: cannot reach the Docker engine ({exc}): start it or set DOCKER_HOST")
    if isinstance(exc, EngineError):
        return _refused(what, exc.status_code, exc.explanation)
    if isinstance(exc, TransportError):
        if exc.reason == "timed out":
            return ToolkitError.failed(f"{what}: the Docker engine did not answer ({exc.reason})")
        return unreachable
    if "docker.errors" not in sys.modules:
        return None
    import docker.errors
    import requests

    if isinstance(exc, docker.errors.APIError):
        return _refused(what, exc.status_code, str(exc.explanation or exc))
    if isinstance(exc, (docker.errors.DockerException, requests.exceptions.ConnectionError)):
        return unreachable
    if isinstance(exc, requests.exceptions.RequestException):
        return ToolkitError.failed(f"{what}: the Docker engine did not answer ({type(exc).__name__}: {exc})")
    return None


def _refused(what: str, status: int | None, explanation: str) -> ToolkitError:
    reason = " ".join(explanation.split())
    return ToolkitError(f"{what}: the Docker engine refused: {reason}", 2 if status == 400 else 1)


def engine_client(timeout: int = 60, pool: int = PARALLEL) -> Any:
    """A Docker SDK client from the environment (DOCKER_HOST etc.), imported lazily."""
    import docker

    return docker.from_env(timeout=timeout, max_pool_size=pool)


class Session:
    """Tracks containers, networks and volumes by name; removes them on exit."""

    def __init__(self, reporter: Reporter, *, prefix: str, client_factory: Callable[[], Any] | None = None) -> None:
        self.reporter = reporter
        self.token = f"{_safe(prefix)}-{uuid.uuid4().hex[:12]}"
        self.containers: list[str] = []
        self.networks: list[str] = []
        self.volumes: list[str] = []
        self._client_factory = client_factory or (lambda: engine_client(timeout=REMOVE_TIMEOUT))
        self._previous: dict[int, Any] = {}
        self._stopping = False
        self._deferred: list[int] = []
        self._counter = 0

    def name(self, kind: str) -> str:
        """A unique resource name carrying the session token (for the last-chance query)."""
        self._counter += 1
        return f"{self.token}-{kind}{self._counter}"

    def __enter__(self) -> Session:
        if threading.current_thread() is threading.main_thread():
            for signum in _SIGNALS:
                self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._stopping:
            self._deferred.append(signum)
            return
        self._stopping = True
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Stopped(signum)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # From here on, signals are only recorded: teardown must run to the end.
        self._stopping = True
        try:
            self.cleanup()
        finally:
            for signum, previous in self._previous.items():
                signal.signal(signum, previous)
            self._previous.clear()
        if self._deferred and not isinstance(exc, (Stopped, KeyboardInterrupt)):
            first = self._deferred[0]
            if first == signal.SIGINT:
                raise KeyboardInterrupt
            raise Stopped(first)

    def cleanup(self) -> None:
        """Force-remove containers, then networks, then volumes. Idempotent."""
        containers, networks, volumes = self.containers[:], self.networks[:], self.volumes[:]
        self.containers.clear()
        self.networks.clear()
        self.volumes.clear()
        if not (containers or networks or volumes):
            return
        try:
            client = self._client_factory()
            api = client.api
            _remove_all(api.remove_container, containers, force=True, v=True)
            # A create still in flight when we were stopped: find it by our token.
            late = [c["Id"] for c in api.containers(all=True, filters={"name": self.token})]
            _remove_all(api.remove_container, late, force=True, v=True)
            late_nets = [n["Id"] for n in api.networks(names=[self.token]) if self.token in n.get("Name", "")]
            _remove_all(api.remove_network, list(dict.fromkeys([*networks, *late_nets])))
            late_vols = [v["Name"] for v in (api.volumes(filters={"name": self.token}).get("Volumes") or [])]
            _remove_all(api.remove_volume, list(dict.fromkeys([*volumes, *late_vols])), force=True)
        except Exception as exc:
            # Teardown must not replace the job's own error with a traceback: one line, go on.
            left = len(containers) + len(networks) + len(volumes)
            reason = "could not reach the Docker engine" if is_unreachable(exc) else "failed"
            self.reporter.warning(
                f"cleanup {reason} ({_short(exc)}); up to {left} resource(s) may remain: "
                "run `ci-toolkit sweep --stale` on this host"
            )


def _remove_all(remove: Callable[..., Any], ids: Iterable[str], **kwargs: Any) -> None:
    ids = list(ids)
    if not ids:
        return
    if len(ids) == 1:
        _remove_one(remove, ids[0], kwargs)
        return
    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(ids))) as pool:
        for future in [pool.submit(_remove_one, remove, i, kwargs) for i in ids]:
            future.result()


def _remove_one(remove: Callable[..., Any], ident: str, kwargs: dict[str, Any]) -> None:
    import docker.errors

    try:
        remove(ident, **kwargs)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        # 409: someone else (a concurrent sweep) is already removing it.
        if exc.status_code != 409:
            raise


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _safe(prefix: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "_.-" else "-" for c in prefix).strip("-_.")
    return cleaned or "ci-toolkit"
