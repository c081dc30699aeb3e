"""`ci-toolkit build` against the real engine: the seed's CI_IMAGE_BUILD_EXTRA_ARGS, the cache
after an engine wipe, concurrency on one key, SIGKILL during export, registry backend,
labels and failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from ci_toolkit.cache import store as cache_store

from ..conftest import PUSH_REGISTRY

DOCKERFILE = """\
ARG DOCKER_REGISTRY=docker.io
FROM ${DOCKER_REGISTRY}/library/busybox
ARG NAME=a
RUN echo "$NAME" > /name
RUN echo "built $NAME" > /done
"""


def clean_env(**extra: str) -> dict[str, str]:
    """A job's environment with nothing from this machine's that could change the build."""
    keep = ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "LANG")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    return {**env, **extra}


def toolkit(
    args: list[str], env: Mapping[str, str], cwd: Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ci_toolkit", *args],
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=cwd,
        timeout=timeout,
    )


def result_of(proc: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert proc.returncode == 0, proc.stderr[-3000:]
    data: dict[str, object] = json.loads(proc.stdout)
    return data


@pytest.fixture
def project(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    return ctx


@pytest.fixture
def images() -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    if made:
        subprocess.run(["docker", "image", "rm", "-f", *made], capture_output=True, check=False)


def engine_wipe(images: list[str]) -> None:
    """What an ephemeral runner loses: our images and the engine's whole build cache."""
    subprocess.run(["docker", "image", "rm", "-f", *images], capture_output=True, check=False)
    subprocess.run(["docker", "buildx", "prune", "-af"], capture_output=True, check=True)


def test_seed_extra_args_two_images_two_keys_cached_after_engine_wipe(
    project: Path, tmp_path: Path, images: list[str]
) -> None:
    root = tmp_path / "cache-root"
    seed = (
        f"--cache-to type=local,dest={root}/${{CONTAINER_NAME}},mode=max "
        f"--cache-from type=local,src={root}/${{CONTAINER_NAME}}"
    )
    run_id = uuid.uuid4().hex[:8]
    names = {f"asan_{run_id}": "asan", f"tidy_{run_id}": "tidy"}
    tags = {c: f"ci-toolkit-test-{c}:latest" for c in names}
    images.extend(tags.values())
    ci = {"CI": "true", "BUILD_NUMBER": "41", "GIT_SHA": "a" * 40}

    def build(container: str) -> dict[str, object]:
        env = clean_env(CI_IMAGE_BUILD_EXTRA_ARGS=seed, CONTAINER_NAME=container, **ci)
        args = ["build", "--json", "--load", "-t", tags[container], "--build-arg", f"NAME={names[container]}", "."]
        proc = toolkit(args, env, project)
        assert proc.stderr.count("notice: managing") == 1
        return result_of(proc)

    first = {c: build(c) for c in names}
    for container in names:
        assert cache_store.current_generation(root / container) is not None, "one key per CONTAINER_NAME"
        assert first[container]["cache_key"] == container
    engine_wipe(list(tags.values()))
    for container, name in names.items():
        again = build(container)
        assert again["cache_steps"] == 3
        assert again["cache_hits"] == 2, "both RUN steps come from the local cache after the wipe"
        out = subprocess.run(
            ["docker", "run", "--rm", tags[container], "cat", "/name"], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == name
    labels = json.loads(
        subprocess.run(
            ["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", tags[f"asan_{run_id}"]],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert labels["ci-toolkit.build-number"] == "41"
    assert labels["org.opencontainers.image.revision"] == "a" * 40
    assert labels["org.opencontainers.image.created"].endswith("Z")
    assert labels["org.opencontainers.image.version"] == "aaaaaaa-41"
    # Disk use per key stays about one generation once the grace period has passed.
    prune = toolkit(["cache", "prune", "--cache-root", str(root), "--grace", "0", "--json"], clean_env(), project)
    assert prune.returncode == 0, prune.stderr
    for container in names:
        assert len(list((root / container).glob("gen-*"))) == 1
    listing = result_of(toolkit(["cache", "ls", "--cache-root", str(root), "--json"], clean_env(), project))
    entries = listing["entries"]
    assert isinstance(entries, list)
    assert sorted(e["key"] for e in entries) == sorted(names)


def _assert_valid(entry: Path) -> None:
    current = cache_store.current_generation(entry)
    assert current is not None
    assert cache_store.verify_layout(current)


def test_eight_concurrent_builds_on_one_key_three_rounds(project: Path, tmp_path: Path) -> None:
    root = tmp_path / "cache-root"
    key = f"concurrent-{uuid.uuid4().hex[:8]}"
    env = clean_env()
    for round_no in range(3):

        def one(i: int, round_no: int = round_no) -> subprocess.CompletedProcess[str]:
            args = ["build", "--json", "--cache-root", str(root), "--cache-key", key]
            args += ["--build-arg", f"NAME=r{round_no}-{i % 2}", "--extra-args", "--output type=cacheonly", "."]
            return toolkit(args, env, project)

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(one, range(8)))
        for proc in results:
            assert proc.returncode == 0, proc.stderr[-2000:]
        _assert_valid(root / key)
        assert not list((root / key).glob("tmp-*")), "no export left behind"
        prune = toolkit(["cache", "prune", "--cache-root", str(root), "--grace", "0"], env, project)
        assert prune.returncode == 0, prune.stderr
        assert len(list((root / key).glob("gen-*"))) <= 2
        _assert_valid(root / key)


BIG_DOCKERFILE = """\
ARG DOCKER_REGISTRY=docker.io
FROM ${DOCKER_REGISTRY}/library/busybox
ARG SEED=0
RUN echo $SEED > /seed && head -c 150000000 /dev/urandom > /big
"""


def test_sigkill_during_cache_export_keeps_current(tmp_path: Path) -> None:
    ctx = tmp_path / "big"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(BIG_DOCKERFILE)
    root = tmp_path / "cache-root"
    key = f"killed-{uuid.uuid4().hex[:8]}"
    entry = root / key
    base = ["build", "--cache-root", str(root), "--cache-key", key, "--extra-args", "--output type=cacheonly"]
    first = toolkit([*base, "--build-arg", "SEED=1", "."], clean_env(), ctx)
    assert first.returncode == 0, first.stderr[-2000:]
    before = cache_store.current_generation(entry)
    assert before is not None

    victim = subprocess.Popen(
        [sys.executable, "-m", "ci_toolkit", *base, "--build-arg", f"SEED={uuid.uuid4().hex}", "."],
        env=clean_env(),
        cwd=ctx,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    exporting = False
    while time.monotonic() < deadline and victim.poll() is None:
        if any(any(p.iterdir()) for p in entry.glob("tmp-*/ingest") if p.is_dir()):
            exporting = True
            break
        time.sleep(0.01)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    assert exporting, "the build was killed while it wrote its cache export"
    assert cache_store.current_generation(entry) == before
    _assert_valid(entry)
    assert list(entry.glob("tmp-*")), "the killed export is still there before the next build"

    after = toolkit([*base, "--build-arg", "SEED=1", "."], clean_env(), ctx)
    assert after.returncode == 0, after.stderr[-2000:]
    _assert_valid(entry)
    time.sleep(0.5)
    assert not list(entry.glob("tmp-*")), "the next build reaped the killed export"


def test_registry_backend_shares_cache_through_the_registry(project: Path, tmp_path: Path) -> None:
    repo = f"ci-toolkit-test/cache-{uuid.uuid4().hex[:8]}"
    key = "fleet"
    args = ["build", "--json", "--cache-backend", "registry", "--cache-ref", f"{PUSH_REGISTRY}/{repo}"]
    args += ["--cache-key", key, "--build-arg", f"NAME={uuid.uuid4().hex}", "--extra-args", "--output type=cacheonly"]
    first = result_of(toolkit([*args, "."], clean_env(), project))
    assert first["cache_backend"] == "registry"
    manifest = requests.get(
        f"http://{PUSH_REGISTRY}/v2/{repo}/manifests/cache-{key}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        timeout=30,
    )
    assert manifest.status_code == 200, "the cache is in the registry under cache-<key>"
    assert manifest.json()["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    second = toolkit([*args, "."], clean_env(), project)
    assert second.returncode == 0
    assert f"importing cache manifest from {PUSH_REGISTRY}/{repo}:cache-{key}" in second.stderr


def test_failed_build_exits_1_with_the_step_log(project: Path, tmp_path: Path) -> None:
    (project / "Dockerfile").write_text(
        "ARG DOCKER_REGISTRY=docker.io\nFROM ${DOCKER_REGISTRY}/library/busybox\n"
        "RUN echo the-compiler-said-no && exit 3\n"
    )
    root = tmp_path / "cache-root"
    proc = toolkit(["build", "--cache-root", str(root), "--cache-key", "fails", "."], clean_env(), project)
    assert proc.returncode == 1
    tail = proc.stderr[proc.stderr.index("error:") :]
    assert "build failed at [2/2] RUN echo the-compiler-said-no" in tail
    assert "  | the-compiler-said-no" in tail.splitlines(), "the failing step's own output is shown"
    assert cache_store.current_generation(root / "fails") is None
    assert not list((root / "fails").glob("tmp-*")), "a failed build leaves no export behind"


def test_inline_dockerfile_and_dry_run(project: Path, tmp_path: Path) -> None:
    root = tmp_path / "cache-root"
    dry = toolkit(["build", "--dry-run", "--cache-root", str(root), "--cache-key", "k", "."], clean_env(), project)
    assert dry.returncode == 0, dry.stderr
    assert "+ docker buildx build" in dry.stderr and "--build-arg DOCKER_REGISTRY=docker.io" in dry.stderr
    assert not root.exists(), "a dry run creates nothing"
    proc = subprocess.run(
        [sys.executable, "-m", "ci_toolkit", "build", "--json", "-f", "-", "--cache-root", str(root), "--cache-key",
         "inline", "--extra-args", "--output type=cacheonly", "."],
        input="ARG DOCKER_REGISTRY\nFROM ${DOCKER_REGISTRY}/library/busybox\nRUN true\n",
        capture_output=True, text=True, env=clean_env(), cwd=project, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert cache_store.current_generation(root / "inline") is not None
