"""Promotion against the test bed's registry (127.0.0.1:5000): digests kept, no blob moved,
never backwards, and ten concurrent promotions that always leave `latest` at the newest."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.helpers import run_cli
from tests.integration.conftest import PUSH_REGISTRY
from tests.integration.registry.test_promote_support import (
    cli_env,
    push_index,
    recording_proxy,
    tag_digest,
    unique,
)

BASE = f"http://{PUSH_REGISTRY}"


@pytest.fixture
def repo() -> Iterator[str]:
    name = unique("ci-toolkit-promote")
    yield name
    _delete_repo_manifests(name)
    _delete_repo_manifests(name + "-release")


def _delete_repo_manifests(repo: str) -> None:
    """Untag what we pushed (the registry has no repository delete; blobs stay until its GC)."""
    tags = requests.get(f"{BASE}/v2/{repo}/tags/list", timeout=30)
    if tags.status_code != 200:
        return
    digests = {tag_digest(BASE, repo, t) for t in tags.json().get("tags") or []}
    for digest in filter(None, digests):
        requests.delete(f"{BASE}/v2/{repo}/manifests/{digest}", timeout=30)


def _buildx_push(tmp_path: Path, ref: str, build_number: int) -> str:
    """A real two-platform image from buildx (busybox + one file, no RUN: no emulation needed)."""
    ctx = tmp_path / f"ctx{build_number}"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY build.txt /build.txt\n")
    (ctx / "build.txt").write_text(f"{ref} {build_number}\n")
    subprocess.run(
        [
            *("docker", "buildx", "build", "-q", "--platform", "linux/amd64,linux/arm64", "--push"),
            *("--label", f"ci-toolkit.build-number={build_number}", "-t", ref, str(ctx)),
        ],
        check=True,
        capture_output=True,
    )
    # The docker driver also keeps a local copy: not ours to leave behind.
    subprocess.run(["docker", "image", "rm", ref], capture_output=True)
    digest = tag_digest(BASE, *ref.split("/", 1)[1].split(":"))
    assert digest
    return digest


def _skopeo_digest(ref: str) -> str:
    import hashlib

    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
        check=True,
        capture_output=True,
    ).stdout
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def test_promoting_a_two_platform_index_keeps_its_digest_and_moves_no_blob(tmp_path: Path, repo: str) -> None:
    built = _buildx_push(tmp_path, f"{PUSH_REGISTRY}/{repo}:build-7", 7)
    with recording_proxy(PUSH_REGISTRY) as (proxy, state):
        result = run_cli(["promote", f"{proxy}/{repo}:build-7", "--tag", "latest", "--tag", "7.x"], env=cli_env())
        assert result.code == 0, result.err
        assert [r for r in state.log if "/blobs/" in r[1]] == []
        # Every request was a manifest read or write: no layer, no config, no upload.
        assert {r[0] for r in state.log} <= {"GET", "HEAD", "PUT"}
        puts = state.requests("PUT")
        assert sorted(p[1] for p in puts) == [f"/v2/{repo}/manifests/7.x", f"/v2/{repo}/manifests/latest"]

    for tag in ("latest", "7.x"):
        assert tag_digest(BASE, repo, tag) == built
        assert _skopeo_digest(f"{PUSH_REGISTRY}/{repo}:{tag}") == built
    assert f"promoted {PUSH_REGISTRY.replace('5000', proxy.split(':')[1])}/{repo}:latest -> {built}" in result.out


def test_cross_repository_promotion_mounts_blobs_and_keeps_the_digest(tmp_path: Path, repo: str) -> None:
    built = push_index(BASE, repo, "build-3", {"ci-toolkit.build-number": "3"})
    with recording_proxy(PUSH_REGISTRY) as (proxy, state):
        result = run_cli(
            ["promote", f"{proxy}/{repo}:build-3", "--to", f"{repo}-release", "--tag", "latest", "--json"],
            env=cli_env(),
        )
        assert result.code == 0, result.err
        # Blobs are linked by mount (POST ?mount=); nothing is read or uploaded.
        assert state.requests("GET", "/blobs/") == []
        assert state.requests("PATCH") == [] and state.requests("PUT", "/blobs/") == []
        mounts = state.requests("POST")
        assert mounts and all("mount=" in m[1] and m[2] == 201 for m in mounts)
    assert json.loads(result.out)["digest"] == built
    assert tag_digest(BASE, f"{repo}-release", "latest") == built
    assert _skopeo_digest(f"{PUSH_REGISTRY}/{repo}-release:latest") == built


def test_latest_never_moves_backwards_and_reads_only_small_configs(repo: str) -> None:
    newer = push_index(BASE, repo, "build-12", {"ci-toolkit.build-number": "12"})
    push_index(BASE, repo, "build-9", {"ci-toolkit.build-number": "9"})
    assert run_cli(["promote", f"{PUSH_REGISTRY}/{repo}:build-12", "--tag", "latest"], env=cli_env()).code == 0

    with recording_proxy(PUSH_REGISTRY) as (proxy, state):
        result = run_cli(["promote", f"{proxy}/{repo}:build-9", "--tag", "latest"], env=cli_env())
        assert result.code == 0
        assert result.out.strip() == "skipped: latest is at build 12, this is build 9"
        # The ordering key comes from the two image configs; no layer is read.
        blob_gets = state.requests("GET", "/blobs/")
        assert len(blob_gets) == 2
        assert state.requests("PUT") == []
    assert tag_digest(BASE, repo, "latest") == newer

    dry = run_cli(
        ["promote", f"{PUSH_REGISTRY}/{repo}:build-9", "--tag", "latest", "--force", "--dry-run"], env=cli_env()
    )
    assert dry.code == 0 and "would point" in dry.out
    assert tag_digest(BASE, repo, "latest") == newer

    strict = run_cli(["promote", f"{PUSH_REGISTRY}/{repo}:build-9", "--tag", "latest", "--strict"], env=cli_env())
    assert strict.code == 1
    assert tag_digest(BASE, repo, "latest") == newer

    forced = run_cli(["promote", f"{PUSH_REGISTRY}/{repo}:build-9", "--tag", "latest", "--force"], env=cli_env())
    assert forced.code == 0
    assert tag_digest(BASE, repo, "latest") != newer


def test_missing_source_and_bad_input(repo: str) -> None:
    missing = run_cli(["promote", f"{PUSH_REGISTRY}/{repo}:nope", "--tag", "latest"], env=cli_env())
    assert missing.code == 1
    assert missing.error_lines == [f"error: source image {PUSH_REGISTRY}/{repo}:nope not found"]
    bad = run_cli(["promote", f"{PUSH_REGISTRY}/{repo}:x", "--tag", "no good"], env=cli_env())
    assert bad.code == 2 and len(bad.error_lines) == 1 and "Traceback" not in bad.err


def test_ten_concurrent_promotions_leave_latest_at_the_newest_build(repo: str) -> None:
    """Builds 1..10 promoted at once, in random order, as ten CI jobs (processes); ten trials."""
    for n in range(1, 11):
        push_index(BASE, repo, f"build-{n}", {"ci-toolkit.build-number": str(n)})
    newest = tag_digest(BASE, repo, "build-10")
    rng = random.Random()
    outcomes: list[str] = []
    for trial in range(10):
        tag = f"latest-{trial}"
        # Start from an old image, so every promoter has a "current" to compare with.
        push_tag = run_cli(["promote", f"{PUSH_REGISTRY}/{repo}:build-1", "--tag", tag], env=cli_env())
        assert push_tag.code == 0
        order = list(range(1, 11))
        rng.shuffle(order)
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "ci_toolkit", "promote", f"{PUSH_REGISTRY}/{repo}:build-{n}", "--tag", tag],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=cli_env(),
            )
            for n in order
        ]
        results = [(n, proc, *proc.communicate(timeout=120)) for n, proc in zip(order, procs, strict=True)]
        report = "\n".join(f"build {n}: exit {p.returncode}: {out.strip()} {err.strip()}" for n, p, out, err in results)
        assert all(p.returncode == 0 for _, p, _, _ in results), report
        outcomes.extend(out for _, _, out, _ in results)
        assert tag_digest(BASE, repo, tag) == newest, f"trial {trial}:\n{report}"
    # The guard did real work: some promoters found a newer build already there.
    assert any(o.startswith("skipped:") for o in outcomes)
