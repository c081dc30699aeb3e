"""The bad-environment half of the corpus: replies from a stub registry that a real one will
not give on demand, an engine or a binary that is not there, a working directory that is
gone. Each case: its documented exit code, exactly one `error:` line, no traceback, never
the last-resort handler. (The bad-input half, in-process: tests/unit/cli/test_corpus.py.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.helpers import REPO, CliResult, run_cli
from tests.unit.cli.test_corpus import assert_classified

DIGEST = "sha256:" + "a" * 64
Reply = Callable[[BaseHTTPRequestHandler], None]


def _send(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Reply:
    def reply(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    return reply


def _truncated_chunked(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    h.wfile.write(b'400\r\n{"schemaVersion": 2')  # promises 1024 bytes, sends 19, hangs up
    h.wfile.flush()
    h.close_connection = True


def _redirect_to_self(h: BaseHTTPRequestHandler) -> None:
    _send(302, headers={"Location": h.path})(h)


HTML = b"<html><body>Sign in to continue</body></html>"
M = "a/manifests/"
TO_B = ("--to", "b")


def _challenge(value: str) -> Reply:
    return _send(401, headers={"WWW-Authenticate": value})


INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass(frozen=True)
class StubCase:
    id: str
    routes: dict[str, Reply]  # path prefix (after /v2/) -> reply; "" matches /v2/ itself
    code: int
    fragment: str
    extra: tuple[str, ...] = ()


CASES = [
    StubCase("html-200-manifest", {M: _send(200, HTML, {"Content-Type": "text/html"})}, 1, "manifest"),
    StubCase("html-200-token", {M: _challenge('Bearer realm="{base}/token",service="s"'),
                                "token": _send(200, HTML, {"Content-Type": "text/html"})}, 1, "did not answer JSON"),
    StubCase("token-without-token", {M: _challenge('Bearer realm="{base}/token"'),
                                     "token": _send(200, b"{}", {"Content-Type": "application/json"})}, 1, "no token"),
    StubCase("token-refused", {M: _challenge('Bearer realm="{base}/token"'),
                               "token": _send(403)}, 1, "authentication failed"),
    StubCase("basic-without-credentials", {M: _challenge('Basic realm="r"')}, 1,
             "authentication failed"),
    StubCase("redirect-loop", {M: _redirect_to_self}, 1, "redirect"),
    StubCase("truncated-chunked", {M: _truncated_chunked}, 1, "a:1"),
    StubCase("manifest-is-a-list", {M: _send(200, b"[1, 2]", {"Content-Type": INDEX})}, 1, "manifest", TO_B),
    StubCase("manifest-not-json", {M: _send(200, b"{nope", {"Content-Type": INDEX})}, 1, "manifest", TO_B),
    StubCase("index-entry-without-digest",
             {M: _send(200, json.dumps({"schemaVersion": 2, "mediaType": INDEX,
                                                     "manifests": [{"size": 1}]}).encode(),
                                    {"Content-Type": INDEX})}, 1, "malformed", TO_B),
    StubCase("digest-header-lies", {M: _send(200, b'{"schemaVersion": 2, "manifests": []}',
                                                          {"Content-Type": INDEX, "Docker-Content-Digest": DIGEST})},
             1, "hash"),
    StubCase("manifest-403", {M: _send(403, b'{"errors": [{"code": "DENIED", "message": "no"}]}')}, 1,
             "403"),
    StubCase("manifest-404", {M: _send(404)}, 1, "a:1"),
    StubCase("errors-body-odd", {M: _send(400, b'{"errors": "not a list"}')}, 1, "HTTP 400"),
    StubCase("retry-after-too-long", {M: _send(429, headers={"Retry-After": "99999"})}, 1, "retry after"),
    StubCase("retry-after-unicode-digits", {M: _send(503, headers={"Retry-After": "²"})}, 1, "503"),
    StubCase("server-errors-persist", {M: _send(500, HTML)}, 1, "500"),
    StubCase("oversized-manifest", {M: _send(200, b" " * (5 * 1024 * 1024), {"Content-Type": INDEX})},
             1, "larger"),
]  # fmt: skip


@pytest.fixture()
def stub() -> Iterator[Callable[[dict[str, Reply]], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(routes: dict[str, Reply]) -> str:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def handle_one(self) -> None:
                path = self.path.split("?")[0]
                rest = path.removeprefix("/v2/") if path.startswith("/v2/") else path.lstrip("/")
                for prefix in sorted(routes, key=len, reverse=True):
                    if (prefix and rest.startswith(prefix)) or (not prefix and rest == ""):
                        return routes[prefix](self)
                return _send(200, b"{}", {"Content-Type": "application/json"})(self) if rest == "" else _send(404)(self)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = handle_one

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        base = f"127.0.0.1:{server.server_address[1]}"
        for prefix, reply in list(routes.items()):
            routes[prefix] = _with_base(reply, base)
        return base

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _with_base(reply: Reply, base: str) -> Reply:
    def wrapped(h: BaseHTTPRequestHandler) -> None:
        original = h.send_header

        def send_header(key: str, value: str) -> None:
            original(key, value.replace("{base}", f"http://{base}"))

        h.send_header = send_header  # type: ignore[method-assign]
        reply(h)

    return wrapped


def _clean_env(tmp_path: Path) -> dict[str, str]:
    return {"DOCKER_CONFIG": str(tmp_path / "no-docker-config"), "HOME": str(tmp_path)}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_stub_registry_replies(case: StubCase, stub: Callable[[dict[str, Reply]], str], tmp_path: Path) -> None:
    host = stub(dict(case.routes))
    result = run_cli(["promote", f"{host}/a:1", "--tag", "latest", "--retries", "1", "--timeout", "3", *case.extra],
                     env=_clean_env(tmp_path), cwd=tmp_path)  # fmt: skip
    assert_classified(result.code, result.err, result.out, case.code, case.fragment)


def _process(args: list[str], env: dict[str, str], cwd: Path | str) -> CliResult:
    proc = subprocess.run(
        [sys.executable, "-m", "ci_toolkit", *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=300,
    )  # fmt: skip
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def _base_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "DOCKER_HOST", "PYTHONPATH", "VIRTUAL_ENV", "TMPDIR")
    return {k: v for k, v in os.environ.items() if k in keep} | {"PYTHONPATH": str(REPO / "src")}


ENVIRONMENT_CASES = [
    ("no-engine-run", ["run", "busybox", "true"], {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}, 3, "engine"),
    ("no-engine-sweep", ["sweep", "--job-id", "x"], {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}, 3, "engine"),
    ("no-docker-binary-build", ["build", ".", "-t", "a/b:1", "--cache-backend", "none"], {"PATH": "/nonexistent"}, 3,
     "docker not found"),
    ("no-docker-binary-setup-builder", ["setup-builder", "--name", "x-ci-toolkit", "--state-dir", "state"],
     {"PATH": "/nonexistent"}, 3, "docker not found"),
    ("no-docker-binary-pipeline", ["pipeline", "run"], {"PATH": "/nonexistent"}, 3, "docker not found"),
    ("pull-never-missing", ["run", "--pull-policy", "never", "ci-toolkit-tests/never-there:1", "true"], {}, 3,
     "pull-policy is never"),
    ("state-dir-is-a-file", ["setup-builder", "--name", "x-ci-toolkit", "--state-dir", "afile"], {}, 1, "afile"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "args", "env", "code", "fragment"), ENVIRONMENT_CASES, ids=[c[0] for c in ENVIRONMENT_CASES]
)
def test_bad_environment(
    tmp_path: Path, case: str, args: list[str], env: dict[str, str], code: int, fragment: str
) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\n")
    (tmp_path / "ci-toolkit.yaml").write_text(
        "steps:\n  a:\n    build:\n      dockerfile-inline: |\n        FROM busybox\n"
    )
    (tmp_path / "afile").write_text("x")
    python = shutil.which("python3") or sys.executable
    assert python
    result = _process(args, {**_base_env(), **env}, tmp_path)
    assert_classified(result.code, result.err, result.out, code, fragment)


def test_working_directory_gone(tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    proc = subprocess.Popen(
        ["sh", "-c", f'cd "{gone}" && rmdir "{gone}" && exec "$0" -m ci_toolkit config show', sys.executable],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_base_env(),
    )  # fmt: skip
    out, err = proc.communicate(timeout=60)
    assert_classified(proc.returncode, err, out, 3, "current directory is gone")


def test_base_image_not_found_names_the_reference(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM 127.0.0.1:5000/ci-toolkit-tests/no-such-base:1\n")
    result = _process(["build", ".", "--cache-backend", "none"], _base_env(), tmp_path)
    assert_classified(
        result.code, result.err, result.out, 1, "base image 127.0.0.1:5000/ci-toolkit-tests/no-such-base:1 not found"
    )
