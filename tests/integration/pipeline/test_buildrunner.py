"""buildrunner.yaml files written from buildrunner's documentation (examples/buildrunner/)
run unchanged on the test bed; each test checks what the key does where a user would look:
the file in the image, the port answering, the cache in the next run, the collected
artifact, the service reached by its name."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO, CliResult, run_cli_process
from tests.integration.pipeline.helpers import Project, index_platforms

EXAMPLES = REPO / "examples" / "buildrunner"


class BuildrunnerProject(Project):
    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 900) -> CliResult:
        env = {"BUILD_NUMBER": self.build_number, "CI_TOOLKIT_CACHE_ROOT": str(self.cache_root), **(env or {})}
        result = run_cli_process(["pipeline", *args], env=env, cwd=self.dir, timeout=timeout)
        if self.results.is_file():
            for step in json.loads(self.results.read_text())["steps"].values():
                self.created.update(ref.split("@")[0] for ref in step.get("refs", []))
        return result

    @property
    def results(self) -> Path:
        return self.dir / "buildrunner.results" / "artifacts.json"

    def artifacts(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.results.read_text())["steps"]
        return data

    def out(self, name: str) -> str:
        return (self.dir / "out" / name).read_text()


@pytest.fixture
def example(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    made: list[BuildrunnerProject] = []

    def copy(name: str) -> BuildrunnerProject:
        target = tmp_path / name
        shutil.copytree(EXAMPLES / name, target)
        (target / "out").mkdir(exist_ok=True)
        (target / "out").chmod(0o777)
        proj = BuildrunnerProject(dir=target, cache_root=tmp_path / "cache")
        made.append(proj)
        return proj

    yield copy
    for proj in made:
        proj.remove_images()


def _ok(result: CliResult) -> None:
    assert result.code == 0, (result.out + result.err)[-4000:]


def _in_image(image: str, script: str) -> str:
    out = subprocess.run(["docker", "run", "--rm", image, "sh", "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_run_options_take_effect_in_the_container(example: Any) -> None:
    proj = example("run-options")
    result = proj.run("run")
    _ok(result)
    assert "pulling" in result.err.split("--- step pull")[1]  # pull: true pulls a present image
    assert proj.out("cmd.txt").split() == ["first", "second", "third"]
    assert proj.out("shell.txt").strip() == "/bin/ash"
    assert proj.out("cwd.txt").strip() == "/tmp"
    assert proj.out("user.txt").split() == ["1234", "2345"]
    assert proj.out("hostname.txt").strip() == "br-host.example.test"
    resolv = proj.out("dns.txt")
    assert "search example.test" in resolv and "192.0.2.53" in resolv
    hosts = dict(reversed(line.split()) for line in proj.out("hosts.txt").splitlines() if len(line.split()) == 2)
    assert hosts["www1.test.com"] == "192.168.0.1"
    assert hosts["db.test.com"].count(".") == 3 and hosts["db.test.com"] != "database"  # the service's address
    assert proj.out("env.txt").split() == [
        "value1",
        "env",
        proj.build_number,
        proj.build_tag,
        proj.build_number,
        "from-the-global-config",  # env: of the global configuration file
    ]
    assert proj.out("alias.txt").strip() == "content from the global config"  # a local-files alias
    assert proj.out("files.txt").split("\n")[:2] == ["hello from the host", "read-only"]
    assert (proj.dir / "data" / "writable" / "new.txt").read_text().strip() == "written-through"
    assert proj.out("volumes_from.txt").strip() == "from-the-image"
    assert proj.out("limits.txt").split() == [str(64 * 1024 * 1024), "50000"]
    assert proj.out("pull.txt").strip() == "pulled"


def test_services_are_reached_by_name_after_their_ports_open(example: Any) -> None:
    proj = example("services")
    result = proj.run("run")
    _ok(result)
    assert proj.out("web.txt").strip() == "hello from the web service"
    assert proj.out("api.txt").strip() == "built api service"
    assert "(web) is accepting connections on port 8080" in result.err
    assert "(api) is accepting connections on port 9090" in result.err


def test_run_caches_are_restored_in_the_next_run_and_bounded_by_prune(example: Any) -> None:
    proj = example("caches")
    _ok(proj.run("run"))
    assert proj.out("before.txt").strip() == "none"
    first = proj.out("m2-before.txt")
    assert first.strip() == "none"
    _ok(proj.run("run"))
    assert proj.out("before.txt").split() == ["run"]
    assert proj.out("m2-before.txt").strip().isdigit()
    keys = [p.read_text().strip() for p in proj.cache_root.glob("*/key")]
    assert any(k.startswith("run-caches-count-counter-") for k in keys) and "run-caches-count-maven" in keys
    # A changed first key still restores through the prefix key (buildrunner's fallback).
    text = (proj.dir / "buildrunner.yaml").read_text().replace("echo run >>", "echo run2 >>")
    (proj.dir / "buildrunner.yaml").write_text(text)
    _ok(proj.run("run"))
    assert proj.out("before.txt").split() == ["run", "run"]
    pruned = run_cli_process(
        ["cache", "prune", "--max-size", "1", "--max-age", "1000d"],
        env={"CI_TOOLKIT_CACHE_ROOT": str(proj.cache_root)},
        cwd=proj.dir,
    )
    assert pruned.code == 0, pruned.err
    assert not list(proj.cache_root.glob("run-*/current"))


def test_concurrent_jobs_on_one_run_cache_never_corrupt_it(example: Any) -> None:
    proj = example("caches")
    results: list[CliResult] = []

    def job() -> None:
        results.append(proj.run("run", "--artifacts", f"results-{uuid.uuid4().hex}.json"))

    threads = [threading.Thread(target=job) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.code for r in results] == [0, 0, 0], [r.err[-2000:] for r in results]
    from ci_toolkit.cache import store

    for current in proj.cache_root.glob("run-*/current"):
        store.verify_tree(current.resolve())
    _ok(proj.run("run"))
    assert proj.out("before.txt").split() == ["run"]


def test_artifacts_are_collected_with_artifacts_json(example: Any) -> None:
    proj = example("artifacts")
    _ok(proj.run("run"))
    results = proj.dir / "buildrunner.results"
    assert (results / "make-artifacts" / "hello.txt").read_text().strip() == "Hello from make-artifacts"
    assert (results / "make-artifacts" / "outdir" / "nested.txt").read_text().strip() == "Hello from outdir"
    assert (results / "make-artifacts" / "renamed.txt").is_file()
    listed = proj.artifacts()["make-artifacts"]["artifacts"]
    assert listed["make-artifacts/hello.txt"] == {"type": "file", "my-property": "some-value"}
    assert listed["make-artifacts/outdir"]["type"] == "directory"
    assert "archive-directory/tree.tar.gz" in proj.artifacts()["archive-directory"]["artifacts"]
    assert (proj.dir / "build" / "seen.txt").read_text().split("\n")[:2] == [
        "Hello from make-artifacts",
        "Hello from outdir",
    ]


def test_xfail_passes_on_failure_and_fails_on_success(example: Any) -> None:
    proj = example("xfail")
    _ok(proj.run("run"))
    (proj.dir / "buildrunner.yaml").write_text(
        (proj.dir / "buildrunner.yaml").read_text().replace("exit 3", "echo fine")
    )
    result = proj.run("run")
    assert result.code == 1 and "xfail" in result.err


def test_post_build_commits_the_run_container_and_builds_on_it(example: Any) -> None:
    proj = example("post-build")
    _ok(proj.run("run"))
    image = f"ci-toolkit-tests/br-post-build:{proj.build_number}"
    proj.created.add(image)
    assert _in_image(image, "cat /made.txt /post.txt").split() == ["made-in-the-run", "added-by-post-build"]


def test_commit_tags_locally_for_later_steps_and_a_run_commits_its_end_state(example: Any) -> None:
    proj = example("commit")
    _ok(proj.run("run"))
    proj.created.update(
        {f"ci-toolkit-tests/br-committed:{proj.build_number}", f"ci-toolkit-tests/br-run-state:{proj.build_number}"}
    )
    assert proj.out("committed.txt").strip() == "Hello World"
    assert (
        _in_image(f"ci-toolkit-tests/br-run-state:{proj.build_number}", "cat /changed.txt").strip() == "changed-in-run"
    )


def _local(image: str) -> bool:
    """The image is in the engine (inspect one name: listing them all races other jobs' removals)."""
    return subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0


def _registry_tags(repo: str) -> list[str]:
    url = f"http://127.0.0.1:5000/v2/{repo}/tags/list"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return sorted(json.load(response).get("tags") or [])
    except OSError:
        return []


def test_push_forms_tag_locally_and_push_only_with_push(example: Any) -> None:
    proj = example("push")
    base = f"ci-toolkit-tests/br-push-{proj.build_number}"
    _ok(proj.run("run"))
    assert _local(f"127.0.0.1:5000/{base}/two:2.0")
    assert _registry_tags(f"{base}/one") == []
    _ok(proj.run("run", "--push"))
    assert _registry_tags(f"{base}/one") == [proj.build_tag]
    assert _registry_tags(f"{base}/two") == sorted(["2.0", proj.build_tag])
    assert _registry_tags(f"{base}/three") == ["3.0", "latest"]  # add_build_tag: false
    proj.created.update(f"127.0.0.1:5000/{base}/{n}" for n in ("one", "two:2.0", "three:3.0", "three:latest"))


def test_import_loads_a_tarball_as_the_steps_image(example: Any, tmp_path: Path) -> None:
    proj = example("import")
    tag = f"ci-toolkit-tests/br-import-src:{uuid.uuid4().hex[:10]}"
    built = subprocess.run(
        ["docker", "build", "-q", "-t", tag, "-"],
        input="FROM busybox\nRUN echo from-the-tarball > /imported.txt\n",
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    try:
        saved = subprocess.run(["docker", "save", "-o", str(proj.dir / "image.tar"), tag], capture_output=True)
        assert saved.returncode == 0, saved.stderr
        subprocess.run(["docker", "image", "rm", tag], capture_output=True)
        _ok(proj.run("run"))
        assert proj.out("imported.txt").strip() == "from-the-tarball"
        proj.created.update({tag, f"ci-toolkit-tests/br-imported:{proj.build_number}"})
    finally:
        subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True)


def test_build_keys_shape_the_image(example: Any) -> None:
    proj = example("build-keys")
    first = proj.run("run", env={"SECRET2": "from-env"})
    _ok(first)
    n = proj.build_number
    proj.created.update(
        f"ci-toolkit-tests/br-{k}:{n}" for k in ("buildargs", "no-cache", "platform", "target", "secrets", "inject")
    )
    assert _in_image(f"ci-toolkit-tests/br-buildargs:{n}", "cat /buildarg.txt").strip() == "BUILD_ARG_VALUE_1"
    assert _in_image(f"ci-toolkit-tests/br-target:{n}", "cat /stage.txt").strip() == "second"
    assert _in_image(f"ci-toolkit-tests/br-secrets:{n}", "cat /secrets.txt").strip() == "secrets-seen"
    assert _in_image(f"ci-toolkit-tests/br-inject:{n}", "cat /tmp/injectfile.txt; ls /dest").split() == [
        "injected",
        "file",
        "content",
        "injectfile.txt",
        "other.txt",
    ]
    arch = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Architecture}}", f"ci-toolkit-tests/br-platform:{n}"],
        capture_output=True,
        text=True,
    )
    assert arch.stdout.strip() == "arm64"
    assert "--no-cache" in first.err and "--pull" in first.err
    assert "--cache-from 127.0.0.1:5000/ci-toolkit-tests/br-none:cache" in first.err
    assert "s3cr3t-value" not in first.out + first.err and "from-env" not in first.out + first.err
    built_at = _in_image(f"ci-toolkit-tests/br-no-cache:{n}", "cat /built-at.txt")
    _ok(proj.run("run", "--step", "no-cache"))
    assert _in_image(f"ci-toolkit-tests/br-no-cache:{n}", "cat /built-at.txt") != built_at  # the RUN ran again


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_ports_are_published_on_the_host(example: Any) -> None:
    proj = example("ports")
    port = _free_port()
    done: list[CliResult] = []
    runner = threading.Thread(target=lambda: done.append(proj.run("run", env={"BR_TEST_PORT": str(port)})))
    runner.start()
    answer = ""
    deadline = time.monotonic() + 120
    while not answer and time.monotonic() < deadline and runner.is_alive():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                answer = response.read().decode()
        except OSError:
            time.sleep(0.3)
    runner.join()
    assert answer.strip() == "answer from the run container"
    _ok(done[0])


@pytest.mark.parametrize("name", ["seed-inline", "seed-multistage"])
def test_seed_examples_run_verbatim(example: Any, name: str) -> None:
    proj = example(name)
    _ok(proj.run("run"))
    steps = proj.artifacts()
    assert list(steps) == ["build-base", "build-from-base"]
    for step in steps.values():
        assert index_platforms(step["image"]) == ["linux/amd64", "linux/arm64"]
    # push: without --push tags the image locally, as buildrunner does.
    assert _local(f"test-image2:{proj.build_tag}")
