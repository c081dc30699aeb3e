"""The few Engine API calls a sweep makes (list and remove containers, networks, volumes),
over the engine's unix socket with ``core.http``.

Why not the Docker SDK here: importing it (requests, urllib3, websocket, the API mixins) costs
~150 ms of CPU before its first request on the machines we measure, about what listing and
removing a job's leftovers costs the engine. The methods have the SDK's names and arguments,
so the sweep takes either; a DOCKER_HOST that is not a unix socket (tcp, ssh, TLS) goes
through the SDK as before (``connect`` returns None)."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ci_toolkit.core.http import Session, TransportError

DEFAULT_SOCKET = "/var/run/docker.sock"


class EngineError(Exception):
    """The engine answered with an error status; the same two attributes as the SDK's APIError."""

    def __init__(self, status_code: int, explanation: str) -> None:
        super().__init__(f"{status_code}: {explanation}")
        self.status_code = status_code
        self.explanation = explanation


def connect(env: Mapping[str, str], *, timeout: float = 60.0) -> EngineAPI | None:
    """An API over the unix socket DOCKER_HOST names (default /var/run/docker.sock), or None
    when DOCKER_HOST is something else and the SDK must handle it."""
    host = env.get("DOCKER_HOST", "").strip() or f"unix://{DEFAULT_SOCKET}"
    if not host.startswith("unix://") or env.get("DOCKER_TLS_VERIFY"):
        return None
    return EngineAPI(host.removeprefix("unix://"), timeout=timeout)


class EngineAPI:
    """Thread-safe: one keep-alive connection per thread."""

    def __init__(self, socket_path: str, *, timeout: float = 60.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._local = threading.local()

    def containers(self, all: bool = False, filters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return list(self._call("GET", "/containers/json", {"all": "1" if all else "0", **_filters(filters)}) or [])

    def networks(self, filters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return list(self._call("GET", "/networks", _filters(filters)) or [])

    def volumes(self, filters: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return dict(self._call("GET", "/volumes", _filters(filters)) or {})

    def remove_container(self, container: str, v: bool = False, force: bool = False) -> None:
        self._call("DELETE", f"/containers/{quote(container)}", {"v": _flag(v), "force": _flag(force)})

    def remove_network(self, net_id: str) -> None:
        self._call("DELETE", f"/networks/{quote(net_id)}")

    def remove_volume(self, name: str, force: bool = False) -> None:
        self._call("DELETE", f"/volumes/{quote(name)}", {"force": _flag(force)})

    def _call(self, method: str, path: str, params: Mapping[str, str] | None = None) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = Session(unix_socket=self.socket_path)
        try:
            resp = session.request(method, f"http://docker{path}", params=params, timeout=(5.0, self.timeout))
        except TransportError as exc:
            # Where we looked is what the user needs to fix DOCKER_HOST; a timeout is the engine's.
            if exc.reason == "timed out":
                raise
            raise TransportError(f"unix://{self.socket_path}: {exc.reason}") from exc
        if resp.status_code >= 400:
            raise EngineError(resp.status_code, _message(resp.content) or f"HTTP {resp.status_code}")
        return resp.json() if resp.content.strip() else None


def _filters(filters: Mapping[str, Any] | None) -> dict[str, str]:
    if not filters:
        return {}
    return {"filters": json.dumps({k: [v] if isinstance(v, str) else list(v) for k, v in filters.items()})}


def _flag(value: bool) -> str:
    return "1" if value else "0"


def _message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:200]
    return str(data.get("message", "")) if isinstance(data, dict) else ""
