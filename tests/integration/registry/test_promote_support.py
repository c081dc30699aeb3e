"""Support for the promote/registry integration tests (no tests here): images pushed straight
through the registry API, a private `docker-registry` on a free port, and a recording,
fault-injecting HTTP proxy for what a real registry will not do on demand."""

from __future__ import annotations

import functools
import hashlib
import http.client
import json
import os
import socket
import ssl
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def upload_blob(base: str, repo: str, data: bytes, auth: tuple[str, str] | None = None) -> str:
    digest = _digest(data)
    if requests.head(f"{base}/v2/{repo}/blobs/{digest}", auth=auth, timeout=30).status_code == 200:
        return digest
    resp = requests.post(f"{base}/v2/{repo}/blobs/uploads/", auth=auth, timeout=30)
    resp.raise_for_status()
    location = resp.headers["Location"]
    if location.startswith("/"):
        location = base + location
    sep = "&" if "?" in location else "?"
    put = requests.put(
        f"{location}{sep}digest={digest}",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
        auth=auth,
        timeout=30,
    )
    put.raise_for_status()
    return digest


def put_manifest(
    base: str, repo: str, ref: str, body: bytes, media_type: str, auth: tuple[str, str] | None = None
) -> str:
    resp = requests.put(
        f"{base}/v2/{repo}/manifests/{ref}", data=body, headers={"Content-Type": media_type}, auth=auth, timeout=30
    )
    resp.raise_for_status()
    return _digest(body)


def push_index(
    base: str,
    repo: str,
    tag: str,
    labels: Mapping[str, str],
    *,
    platforms: tuple[str, ...] = ("amd64", "arm64"),
    auth: tuple[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> str:
    """A two-platform OCI index with one tiny (fake) layer per platform; returns its digest."""
    entries = []
    for arch in platforms:
        layer = f"layer {repo} {tag} {arch} {uuid.uuid4()}".encode()
        layer_digest = upload_blob(base, repo, layer, auth)
        config = json.dumps(
            {
                "architecture": arch,
                "os": "linux",
                "config": {"Labels": dict(labels)},
                "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
            }
        ).encode()
        config_digest = upload_blob(base, repo, config, auth)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest,
                    "size": len(config),
                },
                "layers": [
                    {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": len(layer)}
                ],
            }
        ).encode()
        digest = put_manifest(base, repo, _digest(manifest), manifest, OCI_MANIFEST, auth)
        entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": len(manifest),
                "platform": {"architecture": arch, "os": "linux"},
            }
        )
    index: dict[str, object] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    if annotations:
        index["annotations"] = dict(annotations)
    body = json.dumps(index, indent=3).encode()  # unusual spacing: a re-serialised copy would differ
    return put_manifest(base, repo, tag, body, OCI_INDEX, auth)


def tag_digest(base: str, repo: str, tag: str, auth: tuple[str, str] | None = None) -> str | None:
    resp = requests.head(
        f"{base}/v2/{repo}/manifests/{tag}",
        headers={"Accept": f"{OCI_INDEX}, {OCI_MANIFEST}"},
        auth=auth,
        timeout=30,
    )
    return resp.headers.get("Docker-Content-Digest") if resp.status_code == 200 else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"registry exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


@contextmanager
def private_registry(workdir: Path, *, htpasswd: tuple[str, str] | None = None) -> Iterator[str]:
    """A `docker-registry serve` of our own on a free loopback port; yields host:port."""
    port = free_port()
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    auth = ""
    if htpasswd:
        path = workdir / "htpasswd"
        subprocess.run(["htpasswd", "-Bbc", str(path), htpasswd[0], htpasswd[1]], check=True, capture_output=True)
        auth = f"auth: {{htpasswd: {{realm: ci-toolkit-test, path: {path}}}}}\n"
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: warn, accesslog: {disabled: true}}\n"
        f"storage: {{filesystem: {{rootdirectory: {data}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n" + auth
    )
    log = open(workdir / "registry.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_port(port, proc)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@dataclass
class Fault:
    """What the proxy does to one matching request: status (+Retry-After), reset, or delay."""

    kind: str  # "status" | "reset" | "slow"
    status: int = 503
    retry_after: str = ""
    delay: float = 0.0
    method: str = ""  # only requests with this method ("" = any)
    path: str = ""  # only requests whose path contains this ("" = any)

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("", method) and self.path in path


@dataclass
class ProxyState:
    upstream: str
    faults: list[Fault] = field(default_factory=list)
    persistent: Fault | None = None
    log: list[tuple[str, str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    keep_host: bool = False
    """Forward the client's Host header, so upload Locations point back at the proxy."""
    tls: bool = False

    def take_fault(self, method: str, path: str = "") -> Fault | None:
        with self.lock:
            if self.persistent and self.persistent.matches(method, path):
                return self.persistent
            for i, fault in enumerate(self.faults):
                if fault.matches(method, path):
                    return self.faults.pop(i)
        return None

    def requests(self, method: str = "", contains: str = "") -> list[tuple[str, str, int]]:
        with self.lock:
            return [r for r in self.log if (not method or r[0] == method) and contains in r[1]]


def _handler(state: ProxyState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _forward(self) -> None:
            body = self._body()
            fault = state.take_fault(self.command, self.path)
            if fault is not None and fault.kind == "reset":
                with state.lock:
                    state.log.append((self.command, self.path, -1))
                # RST instead of FIN: the client sees "connection reset by peer".
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True
                return
            if fault is not None and fault.kind == "status":
                with state.lock:
                    state.log.append((self.command, self.path, fault.status))
                self.send_response(fault.status)
                if fault.retry_after:
                    self.send_header("Retry-After", fault.retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if fault is not None and fault.kind == "slow":
                time.sleep(fault.delay)
            dropped = ("connection", "transfer-encoding") if state.keep_host else ("host", "connection")
            # Go clients send a repeated header (Accept) as several lines: keep every value.
            headers = {k: ", ".join(self.headers.get_all(k) or []) for k in self.headers if k.lower() not in dropped}
            if isinstance(self.connection, ssl.SSLSocket):
                headers["X-Forwarded-Proto"] = "https"  # upload Locations must come back as https
            conn = http.client.HTTPConnection(state.upstream, timeout=60)
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            conn.close()
            with state.lock:
                state.log.append((self.command, self.path, resp.status))
            try:
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(key, value)
                # A HEAD's length is the upstream's (the size of what a GET would return).
                length = resp.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _body(self) -> bytes | None:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else None

        do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

    return Handler


@contextmanager
def recording_proxy(upstream: str, *, keep_host: bool = False, tls: bool = False) -> Iterator[tuple[str, ProxyState]]:
    """Forwards to ``upstream`` (host:port), logging (method, path, status); injects faults.
    ``tls``: serve HTTPS with a throwaway self-signed certificate (the engine reaches a
    loopback registry it has no explicit insecure entry for over TLS without verification)."""
    state = ProxyState(upstream, keep_host=keep_host, tls=tls)
    server = (_EitherServer if tls else ThreadingHTTPServer)(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()


class _EitherServer(ThreadingHTTPServer):
    """HTTPS and plain HTTP on one port, told apart by the first byte (0x16: a TLS hello):
    the engine pushes over TLS, while `buildx imagetools` talks plain HTTP to loopback."""

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        sock.settimeout(10)
        try:
            first = sock.recv(1, socket.MSG_PEEK)
            if first == b"\x16":
                sock = _tls_context().wrap_socket(sock, server_side=True)
        except OSError:
            pass
        sock.settimeout(None)
        return sock, addr


@functools.cache
def _tls_context() -> ssl.SSLContext:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
    return context


def cli_env(**extra: str) -> dict[str, str]:
    """An environment with no Docker credentials of the host's user."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CI_TOOLKIT_", "DOCKER_CONFIG"))}
    env.update(extra)
    return env
