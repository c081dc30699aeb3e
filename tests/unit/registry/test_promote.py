"""Promotion logic against an in-memory registry: ordering guard, force/strict, dry-run,
repair after an older overwrite, cross-repository copies. No sockets."""

from __future__ import annotations

import json
import random
from typing import Any
from urllib.parse import urlparse

import pytest

from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.report import Reporter
from ci_toolkit.core.settings import Settings
from ci_toolkit.registry.client import OCI_INDEX, OCI_MANIFEST, RegistryClient, sha256_digest
from ci_toolkit.registry.promote import PromoteRequest, parse_semver, promote
from tests.unit.registry.test_client import Resp

HOST = "reg.example:5000"


class MemoryRegistry:
    """Enough of the distribution API for promotion, with a hook to simulate a racing writer."""

    def __init__(self) -> None:
        self.blobs: dict[tuple[str, str], bytes] = {}
        self.manifests: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.tags: dict[tuple[str, str], str] = {}
        self.calls: list[tuple[str, str]] = []
        self.after_put: Any = None
        self.on_blob_read: Any = None

    def push(self, repo: str, tag: str, labels: dict[str, str], annotations: dict[str, str] | None = None) -> str:
        entries = []
        for arch in ("amd64", "arm64"):
            config = json.dumps({"architecture": arch, "config": {"Labels": labels}}).encode()
            self.blobs[(repo, sha256_digest(config))] = config
            layer = f"{tag}{arch}".encode()
            self.blobs[(repo, sha256_digest(layer))] = layer
            body = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {"digest": sha256_digest(config), "size": len(config)},
                    "layers": [{"digest": sha256_digest(layer), "size": len(layer)}],
                }
            ).encode()
            self.manifests[(repo, sha256_digest(body))] = (body, OCI_MANIFEST)
            entries.append({"mediaType": OCI_MANIFEST, "digest": sha256_digest(body), "platform": {"os": "linux"}})
        index: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        if annotations:
            index["annotations"] = annotations
        body = json.dumps(index).encode()
        digest = sha256_digest(body)
        self.manifests[(repo, digest)] = (body, OCI_INDEX)
        self.tags[(repo, tag)] = digest
        return digest

    def __call__(self, method: str, url: str, headers: dict[str, str]) -> Resp:
        path = urlparse(url).path
        self.calls.append((method, path))
        parts = path.split("/")
        kind_at = max(i for i, p in enumerate(parts) if p in ("manifests", "blobs", "referrers"))
        repo, kind, ref = "/".join(parts[2:kind_at]), parts[kind_at], "/".join(parts[kind_at + 1 :])
        if kind == "referrers":
            return Resp(404)  # a distribution 2.x registry: no referrers API
        if kind == "manifests":
            digest = ref if ref.startswith("sha256:") else self.tags.get((repo, ref), "")
            if method in ("GET", "HEAD"):
                if (repo, digest) not in self.manifests:
                    return Resp(404)
                body, media_type = self.manifests[(repo, digest)]
                return Resp(
                    200, body if method == "GET" else b"", {"Content-Type": media_type, "Docker-Content-Digest": digest}
                )
            if method == "PUT":
                body = self._put_body
                digest = sha256_digest(body)
                self.manifests[(repo, digest)] = (body, headers["Content-Type"])
                if not ref.startswith("sha256:"):
                    self.tags[(repo, ref)] = digest
                if self.after_put:
                    hook, self.after_put = self.after_put, None
                    hook()
                return Resp(201, b"", {"Docker-Content-Digest": digest})
        if kind == "blobs":
            if ref == "uploads/" or ref == "uploads":
                return Resp(201)
            if (repo, ref) in self.blobs:
                if self.on_blob_read and method == "GET":
                    hook, self.on_blob_read = self.on_blob_read, None
                    hook()
                return Resp(200, self.blobs[(repo, ref)] if method == "GET" else b"")
            return Resp(404)
        return Resp(400)


class MemorySession:
    def __init__(self, registry: MemoryRegistry) -> None:
        self.registry = registry

    def request(self, method: str, url: str, *, headers: dict[str, str], data: bytes | None = None, **kw: Any) -> Resp:
        self.registry._put_body = data or b""  # type: ignore[attr-defined]
        if method == "POST":
            # A mount copies the link into the target repository.
            params = kw.get("params") or {}
            repo = urlparse(url).path.split("/")[2:-3]
            self.registry.blobs[("/".join(repo), params["mount"])] = self.registry.blobs[
                (params["from"], params["mount"])
            ]
        return self.registry(method, url, headers)


def run(registry: MemoryRegistry, **kw: Any) -> Any:
    reporter = Reporter(stream=open("/dev/null", "w"))  # noqa: SIM115
    request = PromoteRequest(**{"tags": ("latest",), **kw})

    def factory(host: str) -> RegistryClient:
        return RegistryClient(host, session=MemorySession(registry), reporter=reporter, rng=random.Random(3))  # type: ignore[arg-type]

    return promote(request, settings=Settings(), env={}, reporter=reporter, client_factory=factory)


def test_first_promotion_reads_no_blob_and_keeps_the_digest() -> None:
    reg = MemoryRegistry()
    digest = reg.push("app", "build-3", {"ci-toolkit.build-number": "3"})
    result = run(reg, source=f"{HOST}/app:build-3")
    assert reg.tags[("app", "latest")] == digest
    assert result.outcomes[0].action == "promoted"
    assert not [c for c in reg.calls if "/blobs/" in c[1]]


def test_never_moves_latest_backwards_and_strict_makes_it_exit_1() -> None:
    reg = MemoryRegistry()
    newer = reg.push("app", "build-12", {"ci-toolkit.build-number": "12"})
    reg.push("app", "build-9", {"ci-toolkit.build-number": "9"})
    run(reg, source=f"{HOST}/app:build-12")
    result = run(reg, source=f"{HOST}/app:build-9")
    assert reg.tags[("app", "latest")] == newer
    assert result.outcomes[0].detail == "skipped: latest is at build 12, this is build 9"
    assert result.exit_code == 0
    assert run(reg, source=f"{HOST}/app:build-9", strict=True).exit_code == 1


def test_force_moves_backwards_and_a_newer_build_moves_forwards() -> None:
    reg = MemoryRegistry()
    reg.push("app", "build-2", {"ci-toolkit.build-number": "2"})
    old = reg.push("app", "build-1", {"ci-toolkit.build-number": "1"})
    run(reg, source=f"{HOST}/app:build-2")
    assert run(reg, source=f"{HOST}/app:build-1", force=True).outcomes[0].action == "promoted"
    assert reg.tags[("app", "latest")] == old
    assert run(reg, source=f"{HOST}/app:build-2").outcomes[0].action == "promoted"


def test_annotation_is_read_without_touching_blobs() -> None:
    reg = MemoryRegistry()
    reg.push("app", "a", {}, {"ci-toolkit.build-number": "20"})
    reg.push("app", "b", {}, {"ci-toolkit.build-number": "19"})
    run(reg, source=f"{HOST}/app:a")
    reg.calls.clear()
    assert run(reg, source=f"{HOST}/app:b").outcomes[0].detail == "skipped: latest is at build 20, this is build 19"
    # The two index fetches the guard does anyway are all it reads: no image manifest, no blob.
    assert reg.calls == [("GET", "/v2/app/manifests/b"), ("GET", "/v2/app/manifests/latest")]


def test_over_an_older_annotated_tag_one_get_put_and_read_back_per_tag() -> None:
    reg = MemoryRegistry()
    reg.push("app", "old", {}, {"ci-toolkit.build-number": "1"})
    new = reg.push("app", "new", {}, {"ci-toolkit.build-number": "2"})
    run(reg, source=f"{HOST}/app:old", tags=("a", "b"))
    reg.calls.clear()
    result = run(reg, source=f"{HOST}/app:new", tags=("a", "b"))
    assert [o.action for o in result.outcomes] == ["promoted", "promoted"]
    assert reg.tags[("app", "a")] == reg.tags[("app", "b")] == new
    per_tag = [(m, p) for m, p in reg.calls if p.endswith("/a")]
    assert per_tag == [("GET", "/v2/app/manifests/a"), ("PUT", "/v2/app/manifests/a"), ("HEAD", "/v2/app/manifests/a")]
    assert result.requests == 1 + 2 * 3


def test_semver_and_created_ordering() -> None:
    reg = MemoryRegistry()
    reg.push("app", "v2", {"org.opencontainers.image.version": "2.0.0"})
    reg.push("app", "v2rc", {"org.opencontainers.image.version": "2.0.0-rc.1"})
    run(reg, source=f"{HOST}/app:v2", order_by="semver")
    assert (
        run(reg, source=f"{HOST}/app:v2rc", order_by="semver")
        .outcomes[0]
        .detail.startswith("skipped: latest is at version 2.0.0, this is version 2.0.0-rc.1")
    )
    reg.push("app", "t1", {"org.opencontainers.image.created": "2026-01-01T10:00:00.123456789Z"})
    reg.push("app", "t0", {"org.opencontainers.image.created": "2025-12-31T23:00:00Z"})
    run(reg, source=f"{HOST}/app:t1", tags=("day",))
    assert run(reg, source=f"{HOST}/app:t0", tags=("day",)).outcomes[0].action == "skipped"


def test_explicit_order_key_missing_on_the_source_fails_and_dry_run_changes_nothing() -> None:
    reg = MemoryRegistry()
    reg.push("app", "x", {"ci-toolkit.build-number": "5"})
    reg.push("app", "y", {"ci-toolkit.build-number": "6"})
    run(reg, source=f"{HOST}/app:x")
    with pytest.raises(ToolkitError, match="has no semver"):
        run(reg, source=f"{HOST}/app:y", order_by="semver")
    before = dict(reg.tags)
    assert run(reg, source=f"{HOST}/app:y", dry_run=True).outcomes[0].action == "would-promote"
    assert reg.tags == before


def test_an_older_image_written_right_after_ours_is_repaired() -> None:
    reg = MemoryRegistry()
    old = reg.push("app", "build-1", {"ci-toolkit.build-number": "1"})
    new = reg.push("app", "build-2", {"ci-toolkit.build-number": "2"})

    def racing_writer() -> None:
        reg.tags[("app", "latest")] = old

    reg.after_put = racing_writer
    result = run(reg, source=f"{HOST}/app:build-2")
    assert result.outcomes[0].action == "repaired"
    assert reg.tags[("app", "latest")] == new


def test_a_tag_moved_while_we_compared_is_read_again() -> None:
    reg = MemoryRegistry()
    reg.push("app", "build-1", {"ci-toolkit.build-number": "1"})
    reg.push("app", "build-2", {"ci-toolkit.build-number": "2"})
    newer = reg.push("app", "build-3", {"ci-toolkit.build-number": "3"})
    run(reg, source=f"{HOST}/app:build-1")

    def racing_writer() -> None:
        reg.tags[("app", "latest")] = newer

    reg.on_blob_read = racing_writer
    result = run(reg, source=f"{HOST}/app:build-2")
    assert result.outcomes[0].detail == "skipped: latest is at build 3, this is build 2"
    assert reg.tags[("app", "latest")] == newer


def test_a_rebuild_with_the_same_build_number_written_after_ours_is_left_alone() -> None:
    reg = MemoryRegistry()
    reg.push("app", "build-1", {"ci-toolkit.build-number": "1"})
    ours = reg.push("app", "build-2", {"ci-toolkit.build-number": "2"})
    rerun = reg.push("app", "build-2-rerun", {"ci-toolkit.build-number": "2"})
    run(reg, source=f"{HOST}/app:build-1")
    reg.calls.clear()

    def racing_writer() -> None:
        reg.tags[("app", "latest")] = rerun

    reg.after_put = racing_writer
    result = run(reg, source=f"{HOST}/app:build-2")
    assert result.outcomes[0].action == "superseded"
    assert reg.tags[("app", "latest")] == rerun != ours
    assert [c for c in reg.calls if c[0] == "PUT"] == [("PUT", "/v2/app/manifests/latest")]  # no fight


def test_a_newer_image_written_right_after_ours_wins() -> None:
    reg = MemoryRegistry()
    newer = reg.push("app", "build-3", {"ci-toolkit.build-number": "3"})
    reg.push("app", "build-2", {"ci-toolkit.build-number": "2"})

    def racing_writer() -> None:
        reg.tags[("app", "latest")] = newer

    reg.after_put = racing_writer
    result = run(reg, source=f"{HOST}/app:build-2")
    assert result.outcomes[0].action == "superseded"
    assert reg.tags[("app", "latest")] == newer


def test_cross_repository_promotion_mounts_blobs_and_puts_children_first() -> None:
    reg = MemoryRegistry()
    digest = reg.push("app", "build-1", {"ci-toolkit.build-number": "1"})
    run(reg, source=f"{HOST}/app:build-1", to_repo="release/app", tags=("latest", "stable"))
    assert reg.tags[("release/app", "latest")] == digest == reg.tags[("release/app", "stable")]
    assert not [c for c in reg.calls if c[0] == "GET" and "/blobs/" in c[1]]
    assert len([c for c in reg.calls if c[0] == "POST"]) == 4  # 2 configs + 2 layers, once


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"source": f"{HOST}/app:latest"}, "also a tag to promote"),
        ({"source": f"{HOST}/app:x", "tags": ("bad tag",)}, "invalid tag"),
        ({"source": f"{HOST}/app:x", "order_by": "size"}, "--order-by"),
        ({"source": f"{HOST}/app:x", "to_repo": "other.io/app"}, f"must be a repository on {HOST}"),
    ],
)
def test_bad_requests_are_exit_2(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ToolkitError, match=message) as info:
        run(MemoryRegistry(), **kw)
    assert info.value.exit_code == 2


def test_semver_precedence() -> None:
    versions = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11"]
    versions += ["1.0.0-rc.1", "1.0.0", "v1.2.0", "1.10.0"]
    keys = [parse_semver(v) for v in versions]
    assert keys == sorted(keys)  # type: ignore[type-var]
    assert parse_semver("1.0") is None
