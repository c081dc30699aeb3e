"""Split and merge on the test bed: amd64 and arm64 built by two separate `ci-toolkit build
--push-by-digest` invocations (separate cache keys, arm64 under QEMU), merged into one index
inside the registry. The merged tag runs as aarch64, its platform manifests are the bytes the
platform builds pushed, and a missing platform fails the merge without writing any tag."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.helpers import CliResult, run_cli_process
from tests.integration.conftest import PUSH_REGISTRY

BASE = f"http://{PUSH_REGISTRY}"
ACCEPT = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"
DOCKERFILE = "FROM {{DR}}/busybox:latest\nRUN uname -m > /arch\n".replace("{{DR}}", "127.0.0.1:5001/library")


@dataclass
class Split:
    repo: str
    path: str
    dir: Path
    digests: dict[str, str]
    pushed: dict[str, bytes]

    def cli(self, *args: str) -> CliResult:
        return run_cli_process(list(args), env={"BUILD_NUMBER": "41", "CI_TOOLKIT_CACHE_ROOT": str(self.dir / "cache")})


def manifest(path: str, ref: str) -> requests.Response:
    return requests.get(f"{BASE}/v2/{path}/manifests/{ref}", headers={"Accept": ACCEPT}, timeout=30)


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Split]:
    tmp = tmp_path_factory.mktemp("split")
    (tmp / "Dockerfile").write_text(DOCKERFILE)
    path = f"ci-toolkit-merge-{uuid.uuid4().hex[:10]}/app"
    state = Split(f"{PUSH_REGISTRY}/{path}", path, tmp, {}, {})
    for arch in ("amd64", "arm64"):
        result = state.cli(
            *("build", str(tmp), "--platform", f"linux/{arch}", "--push-by-digest", "--tag", state.repo),
            *("--digest-dir", str(tmp / "digests"), "--cache-key", f"merge-test-{arch}", "--json"),
        )
        assert result.code == 0, result.err[-3000:]
        digest = json.loads(result.out)["digest"]
        state.digests[f"linux/{arch}"] = digest
        pushed = manifest(path, digest)
        assert pushed.status_code == 200
        state.pushed[digest] = pushed.content
    yield state
    subprocess.run(["docker", "image", "rm", "-f", f"{state.repo}:v1"], capture_output=True)


def test_a_platform_push_writes_no_tag_and_a_digest_file(split: Split) -> None:
    tags = requests.get(f"{BASE}/v2/{split.path}/tags/list", timeout=30)
    assert tags.status_code == 404 or not tags.json().get("tags")
    record = json.loads((split.dir / "digests" / "linux-arm64.json").read_text())
    assert record["platform"] == "linux/arm64"
    assert record["images"][0] == {
        **record["images"][0],
        "repository": split.repo,
        "digest": split.digests["linux/arm64"],
    }


def test_merge_builds_the_index_that_runs_as_aarch64(split: Split) -> None:
    result = split.cli("merge", split.repo, "--digest-dir", str(split.dir / "digests"), "--tag", "v1", "--json")
    assert result.code == 0, result.err
    merged = json.loads(result.out)
    index = manifest(split.path, "v1")
    assert index.headers["Docker-Content-Digest"] == merged["digest"]
    body = index.json()
    platforms = {f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"] for m in body["manifests"]}
    assert platforms == split.digests
    for digest, pushed in split.pushed.items():
        assert manifest(split.path, digest).content == pushed  # byte-identical to the platform push
    # The toolkit's labels ride along as index annotations, and each descriptor keeps its own.
    assert body["annotations"]["ci-toolkit.build-number"] == "41"
    assert all("org.opencontainers.image.created" in m.get("annotations", {}) for m in body["manifests"])
    run = subprocess.run(
        ["docker", "run", "--rm", "--pull", "always", "--platform", "linux/arm64", f"{split.repo}:v1", "uname", "-m"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "aarch64"


def test_a_missing_platform_fails_and_writes_no_tag(split: Split) -> None:
    result = split.cli(
        *("merge", split.repo, "--digest", split.digests["linux/amd64"], "--tag", "partial"),
        *("--platforms", "linux/amd64,linux/arm64/v8"),
    )
    assert result.code == 1
    assert len(result.error_lines) == 1 and "linux/arm64 missing" in result.error_lines[0], result.err
    assert manifest(split.path, "partial").status_code == 404


def test_merge_by_digest_arguments_gives_the_same_index(split: Split) -> None:
    args = [a for d in split.digests.values() for a in ("--digest", d)]
    first = split.cli("merge", split.repo, *args, "--dry-run", "--json")
    assert first.code == 0, first.err
    assert set(json.loads(first.out)["platforms"]) == {"linux/amd64", "linux/arm64"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--platform", "linux/amd64,linux/arm64", "--tag", f"{PUSH_REGISTRY}/x/y"], "exactly one --platform"),
        (["--platform", "linux/amd64", "--tag", f"{PUSH_REGISTRY}/x/y:v1"], "without :tag"),
        (["--platform", "linux/amd64"], "needs --tag"),
    ],
)
def test_push_by_digest_bad_input(split: Split, args: list[str], message: str) -> None:
    result = split.cli("build", str(split.dir), "--push-by-digest", *args)
    assert result.code == 2
    assert len(result.error_lines) == 1 and message in result.error_lines[0], result.err
