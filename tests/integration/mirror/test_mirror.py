"""Mirror injection against the test bed: hub 127.0.0.1:5001, pull-through mirror 127.0.0.1:5002.
A stopped mirror is our own pull-through registry on a free port (the shared one stays up);
Docker Hub's 429 comes from a stub, the only fault a real registry here cannot produce."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import socket
import subprocess
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import tomllib

from ci_toolkit.core import proc
from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.report import Reporter
from ci_toolkit.mirror import resolve as mirror
from tests.helpers import run_cli, run_cli_process
from tests.integration.conftest import HUB_REGISTRY, MIRROR_REGISTRY

MIRROR_STORAGE = Path("/var/lib/ci-toolkit-testbed/mirror/data/docker/registry/v2")
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json"
)
HUB_429 = {
    "errors": [
        {
            "code": "TOOMANYREQUESTS",
            "message": "You have reached your pull rate limit. You may increase the limit by authenticating and "
            "upgrading: https://www.docker.com/increase-rate-limits",
        }
    ]
}
HUB_ENV = {"CI_TOOLKIT_HUB_REGISTRY": HUB_REGISTRY}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=300)


@dataclass(frozen=True)
class HubImage:
    repo: str  # e.g. ci-toolkit-test/mirror-<id>
    tag: str
    layers: tuple[str, ...]  # the layers only this image has


def _manifest(registry: str, repo: str, ref: str) -> dict[str, object]:
    resp = requests.get(f"http://{registry}/v2/{repo}/manifests/{ref}", headers={"Accept": MANIFEST_TYPES}, timeout=10)
    resp.raise_for_status()
    data: dict[str, object] = resp.json()
    return data


def _upload_blob(repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = requests.post(f"http://{HUB_REGISTRY}/v2/{repo}/blobs/uploads/", timeout=10)
    start.raise_for_status()
    location = start.headers["Location"]
    sep = "&" if "?" in location else "?"
    url = location if location.startswith("http") else f"http://{HUB_REGISTRY}{location}"
    requests.put(f"{url}{sep}digest={digest}", data=data, timeout=30).raise_for_status()
    return digest


def _marker_layer(ident: str) -> tuple[bytes, str]:
    """A gzipped tar holding /marker: compressed bytes and the uncompressed diff id."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        content = f"{ident}\n".encode()
        info = tarfile.TarInfo("marker")
        info.size, info.mode = len(content), 0o644
        tar.addfile(info, io.BytesIO(content))
    plain = raw.getvalue()
    return gzip.compress(plain, mtime=0), "sha256:" + hashlib.sha256(plain).hexdigest()


@pytest.fixture
def hub_image() -> Iterator[HubImage]:
    """A fresh image pushed to the hub only, straight through the registry API, so its top
    layer exists nowhere else (not even in the engine's content store): busybox + /marker."""
    ident = uuid.uuid4().hex[:12]
    repo, tag = f"ci-toolkit-test/mirror-{ident}", "v1"
    index = _manifest(HUB_REGISTRY, "library/busybox", "latest")
    base = index
    if "manifests" in index:
        amd64 = next(m for m in index["manifests"] if m["platform"]["architecture"] == "amd64")  # type: ignore[attr-defined]
        base = _manifest(HUB_REGISTRY, "library/busybox", amd64["digest"])
    config_desc = base["config"]  # type: ignore[index]
    cfg = requests.get(f"http://{HUB_REGISTRY}/v2/library/busybox/blobs/{config_desc['digest']}", timeout=10)
    config = json.loads(cfg.content)
    for blob in [config_desc, *base["layers"]]:  # type: ignore[list-item]
        data = requests.get(f"http://{HUB_REGISTRY}/v2/library/busybox/blobs/{blob['digest']}", timeout=30).content
        _upload_blob(repo, data)
    layer, diff_id = _marker_layer(ident)
    layer_digest = _upload_blob(repo, layer)
    config["rootfs"]["diff_ids"].append(diff_id)
    config_bytes = json.dumps(config).encode()
    config_digest = _upload_blob(repo, config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": len(config_bytes),
        },
        "layers": [
            *base["layers"],
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",  # type: ignore[list-item]
                "digest": layer_digest,
                "size": len(layer),
            },
        ],
    }
    put = requests.put(
        f"http://{HUB_REGISTRY}/v2/{repo}/manifests/{tag}",
        data=json.dumps(manifest),
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        timeout=10,
    )
    put.raise_for_status()
    yield HubImage(repo, tag, (layer_digest,))


@pytest.fixture
def own_mirror(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Our own pull-through mirror of the hub on a free port, so stopping it harms no one."""
    port = _free_port()
    config = tmp_path / "mirror.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage: {{filesystem: {{rootdirectory: {tmp_path / 'mirror-data'}}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
        f"proxy: {{remoteurl: http://{HUB_REGISTRY}}}\n"
    )
    with open(tmp_path / "mirror.log", "wb") as log:
        server = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=log)
    try:
        for _ in range(100):
            try:
                if requests.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        else:
            pytest.fail(f"own mirror did not start: {(tmp_path / 'mirror.log').read_text()[-500:]}")
        yield f"127.0.0.1:{port}", server
    finally:
        server.terminate()
        server.wait(timeout=10)


class _TooManyRequests(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def handle_one_request(self) -> None:
        # Docker tries https first and falls back to http only when the answer to its TLS
        # hello starts with "HTTP/", as a Go server's does.
        if self.rfile.peek(1)[:1] == b"\x16":
            self.wfile.write(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            self.close_connection = True
            return
        super().handle_one_request()

    def _answer(self, body: bool) -> None:
        payload = json.dumps(HUB_429).encode()
        self.send_response(429)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("ratelimit-limit", "100;w=21600")
        self.send_header("ratelimit-remaining", "0;w=21600")
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def do_GET(self) -> None:
        self._answer(True)

    def do_HEAD(self) -> None:
        self._answer(False)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def rate_limited_registry() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TooManyRequests)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _dockerfile(tmp_path: Path, image: HubImage) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(
        f"ARG DOCKER_REGISTRY\nFROM $DOCKER_REGISTRY/{image.repo}:{image.tag}\nRUN cat /marker\n"
    )
    return ctx


def _warnings(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("warning:")]


# ------------------------------------------------------------------ builds through the mirror


def test_build_from_docker_registry_mirror_pulls_blobs_through_it(tmp_path: Path, hub_image: HubImage) -> None:
    ctx = _dockerfile(tmp_path, hub_image)
    (ctx / "Dockerfile").write_text(
        "ARG DOCKER_REGISTRY\n"
        "FROM $DOCKER_REGISTRY/library/busybox:latest AS base\n"
        f"FROM $DOCKER_REGISTRY/{hub_image.repo}:{hub_image.tag}\n"
        "COPY --from=base /bin/busybox /busybox-from-mirror\n"
        "RUN cat /marker\n"
    )
    assert not (MIRROR_STORAGE / "repositories" / hub_image.repo).exists()
    tag = f"ci-toolkit-test/mirror-out-{uuid.uuid4().hex[:8]}:1"
    try:
        res = run_cli_process(
            ["build", str(ctx), "--tag", tag, "--load", "--cache-backend", "none"],
            env={**HUB_ENV, "CI_TOOLKIT_DOCKER_REGISTRY": MIRROR_REGISTRY},
            cwd=tmp_path,
        )
        assert res.code == 0, res.err
        assert f"DOCKER_REGISTRY={MIRROR_REGISTRY}" in res.err
        assert _warnings(res.err) == []
        # The mirror's own storage now holds the repository and every layer of the fresh image.
        assert (MIRROR_STORAGE / "repositories" / hub_image.repo).is_dir()
        for digest in hub_image.layers:
            hexpart = digest.split(":", 1)[1]
            assert (MIRROR_STORAGE / "blobs" / "sha256" / hexpart[:2] / hexpart / "data").is_file(), digest
    finally:
        _docker("image", "rm", "-f", tag, f"{MIRROR_REGISTRY}/{hub_image.repo}:{hub_image.tag}", check=False)


def test_stopped_mirror_falls_back_to_hub_with_one_warning(
    tmp_path: Path, hub_image: HubImage, own_mirror: tuple[str, subprocess.Popen[bytes]]
) -> None:
    address, server = own_mirror
    server.terminate()
    server.wait(timeout=10)
    ctx = _dockerfile(tmp_path, hub_image)
    env = {**HUB_ENV, "CI_TOOLKIT_DOCKER_REGISTRY": address}
    tag = f"ci-toolkit-test/mirror-fallback-{uuid.uuid4().hex[:8]}:1"
    try:
        res = run_cli_process(["build", str(ctx), "--tag", tag, "--load", "--cache-backend", "none"], env, tmp_path)
        assert res.code == 0, res.err
        warnings = _warnings(res.err)
        assert len(warnings) == 1, res.err
        assert address in warnings[0] and HUB_REGISTRY in warnings[0]
        assert f"DOCKER_REGISTRY={HUB_REGISTRY}" in res.err

        required = run_cli_process(
            ["build", str(ctx), "--tag", tag, "--load", "--cache-backend", "none", "--mirror-required"], env, tmp_path
        )
        assert required.code == 1
        assert len(required.error_lines) == 1 and f"mirror {address}" in required.error_lines[0]
        assert "docker buildx build" not in required.err  # refused before building
    finally:
        _docker("image", "rm", "-f", tag, f"{HUB_REGISTRY}/{hub_image.repo}:{hub_image.tag}", check=False)


def test_pull_reference_goes_through_a_running_mirror_and_falls_back_once(
    own_mirror: tuple[str, subprocess.Popen[bytes]], hub_image: HubImage
) -> None:
    from ci_toolkit.core.settings import Settings

    address, server = own_mirror
    settings = Settings(docker_registry=address, hub_registry=HUB_REGISTRY)
    mirror.reset()
    up = mirror.pull_reference(f"{hub_image.repo}:{hub_image.tag}", settings, Reporter())
    assert up == f"{address}/{hub_image.repo}:{hub_image.tag}"
    # A real pull through our mirror works, and so the mirror holds the image afterwards.
    proc.run(["docker", "pull", up], Reporter(quiet=True))
    try:
        assert _manifest(address, hub_image.repo, hub_image.tag)
    finally:
        _docker("image", "rm", "-f", up, check=False)
    server.terminate()
    server.wait(timeout=10)
    mirror.reset()
    stream = io.StringIO()
    reporter = Reporter(stream=stream)
    down = [mirror.pull_reference(r, settings, reporter) for r in ("busybox", "busybox:latest")]
    assert down == [f"{HUB_REGISTRY}/library/busybox:latest"] * 2
    assert len(_warnings(stream.getvalue())) == 1
    mirror.reset()


# ------------------------------------------------------------------ rate limits


def test_rate_limited_mirror_probe_gives_the_rate_limit_message(tmp_path: Path, rate_limited_registry: str) -> None:
    res = run_cli(["mirror", "registry"], env={"CI_TOOLKIT_DOCKER_REGISTRY": rate_limited_registry}, cwd=tmp_path)
    mirror.reset()
    assert res.code == 1
    (line,) = res.error_lines
    assert "rate limit" in line and rate_limited_registry in line
    assert "You have reached your pull rate limit" in line
    assert "mirror" in line and "docker login" in line


def test_rate_limited_manifest_head_gives_the_rate_limit_message(tmp_path: Path, rate_limited_registry: str) -> None:
    res = run_cli(["mirror", "check", "busybox"], env={"CI_TOOLKIT_HUB_REGISTRY": rate_limited_registry}, cwd=tmp_path)
    mirror.reset()
    assert res.code == 1
    (line,) = res.error_lines
    assert f"pull rate limit reached at {rate_limited_registry}" in line and "remaining 0" in line


def test_dockerd_rate_limit_text_is_explained(rate_limited_registry: str) -> None:
    with pytest.raises(ToolkitError) as info:
        proc.run(["docker", "pull", f"{rate_limited_registry}/library/busybox:latest"], Reporter(quiet=True))
    explained = mirror.explain_rate_limit(info.value, rate_limited_registry)
    assert explained is not info.value, info.value.message
    assert explained.message.startswith(f"pull rate limit reached at {rate_limited_registry}")


def test_buildx_rate_limit_fails_the_build_with_the_message(tmp_path: Path, rate_limited_registry: str) -> None:
    ctx = tmp_path / "ctx429"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {rate_limited_registry}/library/busybox:latest\nRUN true\n")
    res = run_cli_process(["build", str(ctx), "--cache-backend", "none"], cwd=tmp_path)
    assert res.code == 1, res.err
    assert any("pull rate limit reached" in ln for ln in res.error_lines), res.err


# ------------------------------------------------------------------ builders


def test_rendered_buildkitd_toml_is_accepted_by_buildx_create(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    for f in (ca, cert, key):
        f.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    out = tmp_path / "buildkitd.toml"
    env = {
        "CI_TOOLKIT_DOCKER_REGISTRY": MIRROR_REGISTRY,
        "CI_TOOLKIT_MIRRORS": "{ghcr.io: [ghcr-mirror.example.com]}",
        "CI_TOOLKIT_REGISTRY_CA": f"{{registry.example.com: [{ca}]}}",
        "CI_TOOLKIT_REGISTRY_KEYPAIRS": f"{{registry.example.com: ['{cert}:{key}']}}",
        "CI_TOOLKIT_BUILDKIT_MAX_PARALLELISM": "2",
    }
    res = run_cli(["mirror", "render", "--format", "buildkitd", "-o", str(out)], env=env, cwd=tmp_path)
    assert res.code == 0, res.err
    parsed = tomllib.loads(out.read_text())
    assert parsed["registry"]["docker.io"]["mirrors"] == [MIRROR_REGISTRY]
    name = f"ci-toolkit-test-{uuid.uuid4().hex[:10]}"
    created = _docker(
        "buildx", "create", "--name", name, "--driver", "docker-container", "--config", str(out), check=False
    )
    try:
        assert created.returncode == 0, created.stderr
        assert _docker("buildx", "inspect", name).returncode == 0
    finally:
        _docker("buildx", "rm", name, check=False)
    # The same command refuses a broken file, so acceptance above means something.
    out.write_text(out.read_text() + "\n[registry.\n")
    broken = _docker(
        "buildx", "create", "--name", name, "--driver", "docker-container", "--config", str(out), check=False
    )
    _docker("buildx", "rm", name, check=False)
    assert broken.returncode != 0 and "config" in broken.stderr


def test_setup_builder_is_idempotent_and_recreates_on_change(tmp_path: Path) -> None:
    name = f"ci-toolkit-test-{uuid.uuid4().hex[:10]}"
    state = tmp_path / "state"
    args = ["setup-builder", "--name", name, "--state-dir", str(state), "--json"]
    env = {"CI_TOOLKIT_DOCKER_REGISTRY": MIRROR_REGISTRY}
    try:
        first = run_cli_process(args, env, tmp_path)
        assert first.code == 0, first.err
        assert json.loads(first.out)["action"] == "created"
        assert tomllib.loads((state / f"{name}.buildkitd.toml").read_text())["registry"]["docker.io"]["mirrors"] == [
            MIRROR_REGISTRY
        ]
        assert _docker("buildx", "inspect", name).returncode == 0
        again = run_cli_process(args, env, tmp_path)
        assert again.code == 0 and json.loads(again.out)["action"] == "reused", again.err
        assert "buildx create" not in again.err
        changed = run_cli_process(args, {**env, "CI_TOOLKIT_BUILDKIT_MAX_PARALLELISM": "2"}, tmp_path)
        assert changed.code == 0 and json.loads(changed.out)["action"] == "recreated", changed.err
        assert f"+ docker buildx rm {name}" in changed.err
        assert "max-parallelism = 2" in (state / f"{name}.buildkitd.toml").read_text()
    finally:
        _docker("buildx", "rm", name, check=False)


def test_setup_builder_remote_driver_creates_a_real_entry(tmp_path: Path) -> None:
    name = f"ci-toolkit-test-{uuid.uuid4().hex[:10]}"
    args = ["setup-builder", "--name", name, "--driver", "remote", "--endpoint", "tcp://127.0.0.1:1234"]
    try:
        res = run_cli_process([*args, "--state-dir", str(tmp_path)], cwd=tmp_path)
        assert res.code == 0, res.err
        inspect = _docker("buildx", "inspect", name)
        assert "remote" in inspect.stdout and "tcp://127.0.0.1:1234" in inspect.stdout
    finally:
        _docker("buildx", "rm", name, check=False)


def test_setup_builder_dry_run_shows_config_and_commands_and_changes_nothing(tmp_path: Path) -> None:
    name = f"ci-toolkit-test-{uuid.uuid4().hex[:10]}"
    res = run_cli_process(
        ["setup-builder", "--name", name, "--bootstrap", "--dry-run", "--json", "--state-dir", str(tmp_path / "s")],
        {"CI_TOOLKIT_DOCKER_REGISTRY": MIRROR_REGISTRY},
        tmp_path,
    )
    assert res.code == 0, res.err
    config_path = tmp_path / "s" / f"{name}.buildkitd.toml"
    expected = f"+ docker buildx create --name {name} --driver docker-container --config {config_path} --bootstrap"
    assert expected in res.err
    assert tomllib.loads(json.loads(res.out)["config"])["registry"]["docker.io"]["mirrors"] == [MIRROR_REGISTRY]
    assert not config_path.exists()
    assert _docker("buildx", "inspect", name, check=False).returncode != 0
