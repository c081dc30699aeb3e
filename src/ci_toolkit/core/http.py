"""A small HTTP/1.1 session on the standard library: keep-alive connections per host, separate
connect and read timeouts, redirects for GET and HEAD, and nothing read from the environment
(no proxy variables, no ~/.netrc).

Why not ``requests``: importing it (with urllib3, charset_normalizer, idna) costs about 100 ms
on the CI machines we measure, more than a whole promotion of one tag against a registry on
the same network. ``http.client`` is already what it is built on; what we need of it is this.

Transport failures (refused, reset, timed out, a connection closed mid-answer) raise
``TransportError`` with a short description; HTTP statuses are the caller's business."""

from __future__ import annotations

import base64
import http.client
import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode, urljoin, urlsplit

TYPE_CHECKING = False  # not typing's: importing typing costs every command's start-up (CONTRIBUTING)
if TYPE_CHECKING:
    from typing import Any, BinaryIO

REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
# Bodies we keep are manifests and small JSON documents; more than this is read no further.
MAX_BODY = 16 * 1024 * 1024
# A file body (a blob upload) is sent in blocks of this size (http.client's default is 8 KiB).
BLOCK = 1024 * 1024


class TransportError(ConnectionError):
    """The request got no complete answer; ``reason`` is a short lower-case description."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Response:
    status_code: int
    headers: Mapping[str, str]  # case-insensitive (http.client's message)
    content: bytes = field(repr=False)
    url: str = ""

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)

    def close(self) -> None:
        """Bodies are read in full; nothing to release (the same call as ``requests``)."""


class Session:
    """One keep-alive connection per scheme://host:port. Not thread-safe. With
    ``unix_socket``, every ``http://`` URL is sent over that socket (the Docker engine's API)."""

    def __init__(self, *, verify: bool = True, unix_socket: str = "") -> None:
        self.verify = verify
        self.unix_socket = unix_socket
        self._connections: dict[tuple[str, str], http.client.HTTPConnection] = {}

    def get(self, url: str, **kw: Any) -> Response:
        return self.request("GET", url, allow_redirects=True, **kw)

    def post(self, url: str, **kw: Any) -> Response:
        return self.request("POST", url, **kw)

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | BinaryIO | Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: tuple[float, float] = (5.0, 30.0),
        allow_redirects: bool = False,
        max_body: int = MAX_BODY,
    ) -> Response:
        send = dict(headers or {})
        if auth:
            send["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        if isinstance(data, Mapping):
            data = urlencode(data, doseq=True).encode()
            send.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params, doseq=True)
        for _ in range(MAX_REDIRECTS + 1):
            resp = self._once(method, url, send, data, timeout, max_body)
            location = resp.headers.get("Location", "")
            if not (allow_redirects and resp.status_code in REDIRECTS and location):
                return resp
            target = urljoin(url, location)
            if urlsplit(target).netloc != urlsplit(url).netloc:
                # Credentials are for the host that asked for them, never for where it sends us.
                send.pop("Authorization", None)
            url = target
        raise TransportError(f"more than {MAX_REDIRECTS} redirects")

    def close(self) -> None:
        for conn in self._connections.values():
            conn.close()
        self._connections.clear()

    def _once(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | BinaryIO | None,
        timeout: tuple[float, float],
        max_body: int,
    ) -> Response:
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        key = (parts.scheme, parts.netloc)
        conn = self._connections.get(key) or self._connect(parts.scheme, parts.netloc, timeout[0])
        try:
            if conn.sock is None:
                conn.connect()
            conn.sock.settimeout(timeout[1])
            conn.request(method, path, body=body, headers=dict(headers))
            raw = conn.getresponse()
            content = raw.read(max_body + 1)  # HEAD: b"", http.client knows there is no body
            reusable = not raw.will_close and raw.isclosed()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            self._connections.pop(key, None)
            raise TransportError(_describe(exc)) from exc
        if reusable:
            self._connections[key] = conn
        else:
            conn.close()
            self._connections.pop(key, None)
        answered: Mapping[str, str] = raw.headers  # type: ignore[assignment]  # an email Message reads like one
        return Response(raw.status, answered, content, url)

    def _connect(self, scheme: str, netloc: str, connect_timeout: float) -> http.client.HTTPConnection:
        if scheme == "http" and self.unix_socket:
            return _UnixConnection(self.unix_socket, timeout=connect_timeout)
        if scheme == "http":
            return http.client.HTTPConnection(netloc, timeout=connect_timeout, blocksize=BLOCK)
        if scheme != "https":
            raise TransportError(f"unsupported URL scheme {scheme!r}")
        context = _tls_context(self.verify)
        return http.client.HTTPSConnection(netloc, timeout=connect_timeout, context=context, blocksize=BLOCK)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, *, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


_CONTEXTS: dict[bool, Any] = {}


def _tls_context(verify: bool) -> Any:
    """The system's CAs plus certifi's (what ``requests`` trusted), built once per process."""
    if verify not in _CONTEXTS:
        import ssl

        context = ssl.create_default_context()
        if verify:
            try:
                import certifi

                context.load_verify_locations(certifi.where())
            except (ImportError, OSError):
                pass
        else:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        _CONTEXTS[verify] = context
    return _CONTEXTS[verify]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, FileNotFoundError | PermissionError):
        return (exc.strerror or str(exc)).lower()
    if isinstance(exc, http.client.RemoteDisconnected):
        return "connection closed without an answer"
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return "connection reset"
    if isinstance(exc, socket.gaierror):
        return "name not resolved"
    if isinstance(exc, http.client.IncompleteRead):
        return "connection closed mid-answer"
    text = str(exc).strip()
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return "certificate verify failed"
    return text.splitlines()[0][:120] if text else type(exc).__name__
