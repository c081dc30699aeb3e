"""A stand-in for GitHub's Actions cache service on loopback, for `cache-backend: gha`.

The real service is reachable only from a GitHub runner, with the runner's token, so a stub is
the only way to see what buildx and BuildKit send it. It speaks the API BuildKit 0.13 (the one
inside the test bed's dockerd) speaks: v1 under `<ACTIONS_CACHE_URL>_apis/artifactcache/`,
as tonistiigi/go-actions-cache calls it (look up by key or prefix, reserve, upload ranges,
commit, download from the entry's archiveLocation). Entries are kept in memory, so an index
one build exports is there for the next build's import. Every request is recorded with its
Authorization header: what reached the stub is what the test asserts.

It also returns `runtime_token()`: a JWT shaped like the runner's (RS256 header, `exp`, `nbf`
and the `ac` scopes claim BuildKit reads to name the index), with a signature nobody can
check. BuildKit parses the token without verifying it and refuses one without those claims."""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

API = "/_apis/artifactcache/"
_RANGE = re.compile(r"bytes (\d+)-(\d+)/")


def runtime_token(scope: str = "refs/heads/main", ttl: int = 3600) -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    scopes = json.dumps([{"Scope": scope, "Permission": 3}])  # read | write
    header = part(json.dumps({"typ": "JWT", "alg": "RS256"}).encode())
    claims = part(json.dumps({"nbf": now - 60, "exp": now + ttl, "ac": scopes}).encode())
    return f"{header}.{claims}.{part(os.urandom(64))}"


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    authorization: str


@dataclass
class _Entry:
    key: str
    data: bytearray = field(default_factory=bytearray)
    committed: float = 0.0


@dataclass
class CacheService:
    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    entries: dict[int, _Entry] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def committed_keys(self) -> list[str]:
        with self.lock:
            return [e.key for e in self.entries.values() if e.committed]

    def find(self, keys: list[str]) -> tuple[int, _Entry] | None:
        """The service's lookup: each key in order, an exact match first, then the newest
        entry the key is a prefix of (how BuildKit finds the latest `index-...#N`)."""
        with self.lock:
            done = [(i, e) for i, e in self.entries.items() if e.committed]
        for key in keys:
            exact = [(i, e) for i, e in done if e.key == key]
            prefixed = sorted(((i, e) for i, e in done if e.key.startswith(key)), key=lambda p: p[1].committed)
            if exact or prefixed:
                return (exact or prefixed)[-1]
        return None

    def reserve(self, key: str) -> int | None:
        with self.lock:
            if any(e.key == key for e in self.entries.values()):
                return None
            cache_id = len(self.entries) + 1
            self.entries[cache_id] = _Entry(key)
            return cache_id


def _handler(service: CacheService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":  # Go's SectionReader bodies
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _reply(
            self, code: int, payload: object = None, *, raw: bytes = b"", extra: dict[str, str] | None = None
        ) -> None:
            body = json.dumps(payload).encode() if payload is not None else raw
            self.send_response(code)
            for name, value in {"Content-Type": "application/json", **(extra or {})}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _record(self) -> tuple[str, bytes]:
            body = self._body()
            service.seen.append(Seen(self.command, self.path, self.headers.get("Authorization", "")))
            return urlsplit(self.path).path, body

        def do_GET(self) -> None:
            path, _ = self._record()
            if path.startswith("/download/"):
                self._download(int(path.rsplit("/", 1)[1]))
            elif path == API + "cache":
                keys = parse_qs(urlsplit(self.path).query).get("keys", [""])[0].split(",")
                found = service.find(keys)
                if found is None:
                    self._reply(204)
                else:
                    cache_id, entry = found
                    location = f"{service.url}download/{cache_id}"
                    self._reply(200, {"cacheKey": entry.key, "scope": "refs/heads/main", "archiveLocation": location})
            else:
                self._reply(404, {"message": f"not emulated: GET {path}"})

        def do_POST(self) -> None:
            path, body = self._record()
            if path == API + "caches":
                cache_id = service.reserve(json.loads(body)["key"])
                if cache_id is None:
                    exists = {"message": "Cache already exists.", "typeKey": "ArtifactCacheItemAlreadyExistsException"}
                    self._reply(409, exists)
                else:
                    self._reply(201, {"cacheID": cache_id})
            elif path.startswith(API + "caches/"):
                entry = service.entries[int(path.rsplit("/", 1)[1])]
                if len(entry.data) != json.loads(body)["size"]:
                    self._reply(400, {"message": "size does not match the uploaded bytes"})
                    return
                entry.committed = time.monotonic()
                self._reply(204)
            else:
                self._reply(404, {"message": f"not emulated: POST {path}"})

        def do_PATCH(self) -> None:
            path, body = self._record()
            match = _RANGE.match(self.headers.get("Content-Range", ""))
            if not path.startswith(API + "caches/") or match is None:
                self._reply(400, {"message": "expected caches/<id> with a Content-Range"})
                return
            entry, start = service.entries[int(path.rsplit("/", 1)[1])], int(match.group(1))
            with service.lock:
                if len(entry.data) < start + len(body):
                    entry.data.extend(b"\0" * (start + len(body) - len(entry.data)))
                entry.data[start : start + len(body)] = body
            self._reply(204)

        def _download(self, cache_id: int) -> None:
            data = bytes(service.entries[cache_id].data)
            offset = int(re.sub(r"\D", "", self.headers.get("Range", "")) or 0)
            if offset:
                extra = {"Content-Range": f"bytes {offset}-{len(data) - 1}/{len(data)}"}
                self._reply(206, raw=data[offset:], extra={"Content-Type": "application/octet-stream", **extra})
            else:
                self._reply(200, raw=data, extra={"Content-Type": "application/octet-stream"})

    return Handler


@contextmanager
def cache_service() -> Iterator[CacheService]:
    """The stub on 127.0.0.1 (the engine's BuildKit runs in dockerd, on this host's network)."""
    service = CacheService()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(service))
    service.url = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()
