"""The composite action, run step by step as GitHub's runner runs it (see test_action_support),
against the test bed: build pushes to the local registry, promote moves `latest` there."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.helpers import load_script
from tests.integration.ci.test_action_support import (
    REPO,
    ActionRun,
    base_env,
    copy_checkout,
    registry_digest,
    remove_local_images,
    run_action,
    shared_venv_root,
    unique_repo,
)

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@pytest.fixture(scope="session")
def action_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_checkout(tmp_path_factory.mktemp("action"))


@pytest.fixture(scope="session")
def tool_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One venv for the session: the action installs once and reuses it after that."""
    return shared_venv_root(tmp_path_factory).parent


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    dest = tmp_path / "workspace"
    shutil.copytree(REPO / "examples" / "hello", dest)
    return dest


@pytest.fixture(scope="module")
def built(
    action_path: Path, tool_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ActionRun, str]]:
    workspace = tmp_path_factory.mktemp("build-ws") / "hello"
    shutil.copytree(REPO / "examples" / "hello", workspace)
    tag = f"{unique_repo('action')}:b17"
    run = run_action(
        action_path,
        {
            "command": "build",
            "context": ".",
            "tags": tag,
            "push": "true",
            "build-args": "DOCKER_REGISTRY=docker.io",
            "labels": "org.example.team=ci\norg.example.note=a, b",
            "cache-root": str(workspace.parent / "cache"),
        },
        workspace=workspace,
        tool_cache=tool_cache,
    )
    yield run, tag
    remove_local_images([tag])


def test_build_through_the_action_publishes_outputs_and_summary(built: tuple[ActionRun, str]) -> None:
    run, tag = built
    assert run.code == 0, run.log
    out = run.outputs
    assert DIGEST.match(out["digest"]), out
    assert out["digest"] == registry_digest(tag), "the digest output is what the registry serves"
    assert out["image"].startswith(tag)
    assert tag in out["tags"].split(",")
    assert out["cache-key"]
    assert out["cache-hit"] in ("true", "false")
    metadata = json.loads(out["metadata"])
    assert metadata["digest"] == out["digest"]
    assert tag in run.summary and out["digest"] in run.summary


def test_install_runs_in_a_log_group_and_once(built: tuple[ActionRun, str], action_path: Path) -> None:
    run, _ = built
    install = run.steps[0]
    assert install.code == 0
    log = install.stdout + install.stderr
    assert "::group::Install ci-toolkit" in log or "already installed" in log
    if "::group::" in log:
        assert log.index("::group::") < log.index("::endgroup::")
    assert Path(install.outputs["bin"]).name == "ci-toolkit"


def test_promote_through_the_action_moves_latest(
    built: tuple[ActionRun, str], action_path: Path, tool_cache: Path, workspace: Path
) -> None:
    build_run, tag = built
    assert build_run.code == 0, build_run.log
    repo = tag.rsplit(":", 1)[0]
    run = run_action(
        action_path,
        {"command": "promote", "source": build_run.outputs["image"], "promote-tags": "latest\nstable"},
        workspace=workspace,
        tool_cache=tool_cache,
    )
    assert run.code == 0, run.log
    assert "already installed" in run.steps[0].stderr, "the second run of this version installs nothing"
    digest = build_run.outputs["digest"]
    assert registry_digest(f"{repo}:latest") == digest
    assert registry_digest(f"{repo}:stable") == digest
    assert run.outputs["digest"] == digest
    assert set(run.outputs["tags"].split(",")) == {f"{repo}:latest", f"{repo}:stable"}
    assert json.loads(run.outputs["metadata"])["digest"] == digest
    assert "latest" in run.summary and digest in run.summary


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"command": "build", "source": "x:1"}, "input 'source' does not apply to command 'build'"),
        ({"command": "deploy"}, "unknown command 'deploy'"),
        ({"command": "promote"}, "promote needs the input 'source'"),
        ({"command": "build", "push": "maybe"}, "input 'push' must be true or false"),
        ({"command": "run", "args": "busybox 'unbalanced"}, "input 'args' cannot be split"),
    ],
)
def test_bad_inputs_fail_with_one_error_line(
    inputs: dict[str, str], message: str, action_path: Path, tool_cache: Path, workspace: Path
) -> None:
    run = run_action(action_path, inputs, workspace=workspace, tool_cache=tool_cache)
    assert run.code == 2
    assert run.error_lines == [f"error: {run.error_lines[0][7:]}"] and message in run.error_lines[0]
    assert "Traceback" not in run.log


def _load_ci_action() -> ModuleType:
    return load_script(REPO / "scripts" / "ci-action", "ci_action")


def test_action_inputs_all_reach_the_launcher_through_env() -> None:
    action = yaml.safe_load((REPO / "action.yml").read_text())
    launcher = _load_ci_action()
    steps = action["runs"]["steps"]
    run_step = next(s for s in steps if s.get("id") == "run")
    env = run_step["env"]
    for name in action["inputs"]:
        if name == "python":
            continue
        assert env[launcher.env_name(name)] == f"${{{{ inputs.{name} }}}}", name
    assert set(action["inputs"]) == set(launcher.ALL_INPUTS)
    for step in steps:
        assert "${{" not in step.get("run", ""), step.get("name")
        # Actions other than pinned ones never run (a tag can move; zizmor checks the pin too).
        assert "uses" not in step or re.fullmatch(r"[\w./-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
    for name, spec in action["outputs"].items():
        assert spec["value"] == f"${{{{ steps.run.outputs.{name} }}}}"


def _labelled(kind: str, job_id: str) -> list[str]:
    every = ["-a"] if kind == "container" else []
    label = f"label=ci-toolkit.job-id={job_id}"
    listed = subprocess.run(["docker", kind, "ls", "-q", *every, "--filter", label], capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    return listed.stdout.split()


def test_cancel_reaches_the_toolkit_through_the_launcher(action_path: Path, tool_cache: Path, tmp_path: Path) -> None:
    """A CI cancels a job with SIGTERM to the step's process: the launcher forwards it, so
    the toolkit cleans up and the step ends with 143, leaving nothing behind."""
    job_id = f"action-cancel-{uuid.uuid4().hex[:8]}"
    env = base_env(CI_TOOLKIT_JOB_ID=job_id, CI_TOOLKIT_VENV_ROOT=str(tool_cache / "ci-toolkit"))
    proc = subprocess.Popen(
        [str(action_path / "scripts" / "ci-run"), "busybox", "--", "sleep", "120"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not _labelled("container", job_id):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run container never started"
            time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert _labelled("container", job_id) == [] and _labelled("network", job_id) == []


def test_pipeline_through_the_action_reports_each_step_in_metadata(
    action_path: Path, tool_cache: Path, workspace: Path
) -> None:
    repo = unique_repo("action-pipeline")
    (workspace / "pipeline.yaml").write_text(
        "build-registry: 127.0.0.1:5000\n"
        "insecure-registries: [127.0.0.1:5000, 127.0.0.1:5001, 127.0.0.1:5002]\n"
        "steps:\n"
        "  app:\n"
        "    build:\n"
        "      path: .\n"
        "      build-args: {DOCKER_REGISTRY: docker.io}\n"
        "      platforms: [linux/amd64]\n"
        f"    push: {repo}\n"
    )
    run = run_action(
        action_path,
        {"command": "pipeline", "config": "pipeline.yaml", "push": "true", "cache-root": str(workspace / "cache")},
        workspace=workspace,
        tool_cache=tool_cache,
    )
    build_tag = f"{run.github_env['GITHUB_SHA'][:7]}-{run.github_env['GITHUB_RUN_NUMBER']}"
    remove_local_images([f"{repo}:{build_tag}"])
    assert run.code == 0, run.log
    # What examples/github/multi-platform-pipeline.yml reads with fromJSON(...).steps.app.image
    app = json.loads(run.outputs["metadata"])["steps"]["app"]
    assert app["status"] in ("built", "ok", "succeeded", "done"), app
    assert app["digest"] == registry_digest(f"{repo}:{build_tag}")
    assert app["image"].endswith("@" + app["digest"]), "an immutable reference, fit for promote's source"
    assert f"{repo}:{build_tag}@{app['digest']}" in app["refs"]
    assert "app" in run.summary


def test_launcher_maps_inputs_to_one_command_line_without_a_shell() -> None:
    launcher = _load_ci_action()
    env = {
        "INPUT_COMMAND": "build",
        "INPUT_CONTEXT": "app",
        "INPUT_FILE": "app/Dockerfile.ci",
        "INPUT_PLATFORMS": "linux/amd64,\nlinux/arm64",
        "INPUT_TAGS": "r/a:1, r/a:2",
        "INPUT_PUSH": "true",
        "INPUT_BUILD_ARGS": "A=1,2\nB=$(touch /tmp/x)",
        "INPUT_LABELS": "l=x y",
        "INPUT_CACHE_ROOT": "/var/cache/ci",
        "INPUT_EXTRA_ARGS": "--ssh default",
        "INPUT_CONFIG": "ci.yaml",
        "INPUT_ARGS": "--builder 'my builder'",
    }
    argv = launcher.command_line("build", launcher.read_inputs(env), env, strict=True)
    assert argv == [
        *["--config", "ci.yaml", "--set", "cache-root=/var/cache/ci", "build", "app"],
        *["--file", "app/Dockerfile.ci", "--platform", "linux/amd64,linux/arm64"],
        *["--tag", "r/a:1", "--tag", "r/a:2", "--build-arg", "A=1,2", "--build-arg", "B=$(touch /tmp/x)"],
        *["--label", "l=x y", "--push", "--extra-args", "--ssh default", "--builder", "my builder"],
    ]
    promote = {"INPUT_SOURCE": "r/a:1", "INPUT_PROMOTE_TAGS": "latest,stable"}
    assert launcher.command_line("promote", launcher.read_inputs(promote), promote, strict=True) == [
        *["promote", "r/a:1", "--tag", "latest", "--tag", "stable"]
    ]
    # In GitLab, the build job's dotenv report supplies the source.
    assert (
        launcher.command_line("promote", launcher.read_inputs({}), {"CI_TOOLKIT_IMAGE": "r/a:9"}, strict=False)[1]
        == "r/a:9"
    )


def test_launcher_maps_metadata_action_inputs() -> None:
    launcher = _load_ci_action()
    env = {
        "INPUT_TAGS": "r/a:build",
        "INPUT_IMAGES": "r/a\nname=ghcr.io/o/a,enable=false",
        "INPUT_TAGS_FROM": "type=semver,pattern={{version}}\ntype=ref,event=branch",
        "INPUT_FLAVOR": "latest=false\nprefix=v,onlatest=true",
    }
    argv = launcher.command_line("build", launcher.read_inputs(env), env, strict=True)
    assert argv[argv.index("--image") :] == [
        *["--image", "r/a", "--image", "name=ghcr.io/o/a,enable=false"],
        *["--tags-from", "type=semver,pattern={{version}}", "--tags-from", "type=ref,event=branch"],
        *["--flavor", "latest=false", "--flavor", "prefix=v,onlatest=true"],
    ]
    meta = {"INPUT_COMMAND": "meta", "INPUT_IMAGES": "r/a", "INPUT_LABELS": "a=b"}
    assert launcher.command_line("meta", launcher.read_inputs(meta), meta, strict=True) == [
        *["meta", "--image", "r/a", "--label", "a=b"]
    ]


def test_launcher_maps_attestation_inputs() -> None:
    launcher = _load_ci_action()
    env = {
        "INPUT_PROVENANCE": "mode=max",
        "INPUT_SBOM": "true",
        "INPUT_ATTESTS": "type=sbom,generator=r/scanner:1",
        "INPUT_ANNOTATIONS": "index:org.opencontainers.image.title=App, with a comma\nmanifest:a=b",
    }
    argv = launcher.command_line("build", launcher.read_inputs(env), env, strict=True)
    assert argv == [
        *["build", "--provenance", "mode=max", "--sbom", "true", "--attest", "type=sbom,generator=r/scanner:1"],
        *["--annotation", "index:org.opencontainers.image.title=App, with a comma", "--annotation", "manifest:a=b"],
    ]


def test_launcher_moves_secret_values_off_the_command_line() -> None:
    launcher = _load_ci_action()
    argv = ["run", "--secret-env", "API_TOKEN=s3cr3t", "--secret-env=B=x=y", "--secret-env", "PLAIN"]
    argv += ["--set", "registry-password=pw1", "--set=cache-ref=r/c", "busybox", "--", "--secret-env", "A=b"]
    args, env = launcher.secrets_to_env(argv)
    assert args == [
        *["run", "--secret-env", "API_TOKEN", "--secret-env", "B", "--secret-env", "PLAIN"],
        *["--set", "cache-ref=r/c", "busybox", "--", "--secret-env", "A=b"],
    ]
    assert env == {"API_TOKEN": "s3cr3t", "B": "x=y", "CI_TOOLKIT_REGISTRY_PASSWORD": "pw1"}


def test_launcher_knows_every_secret_setting() -> None:
    from ci_toolkit.core.settings import SETTING_FIELDS, is_secret

    assert set(_load_ci_action().SECRET_SETTINGS) == {key for key in SETTING_FIELDS if is_secret(key)}


def test_launcher_maps_build_push_action_inputs_and_keeps_secret_values_off_argv() -> None:
    launcher = _load_ci_action()
    env = {
        "INPUT_NO_CACHE": "true",
        "INPUT_PULL": "true",
        "INPUT_SECRETS": "GIT_AUTH_TOKEN=s3cr3t-value\nnpm.rc=x=y",
        "INPUT_SECRET_FILES": "aws=/home/u/.aws/credentials",
        "INPUT_SSH": "default",
        "INPUT_BUILD_CONTEXTS": "alpine=docker-image://alpine:3.20",
        "INPUT_NETWORK": "host",
        "INPUT_OUTPUTS": "type=local,dest=out",
    }
    argv = launcher.command_line("build", launcher.read_inputs(env), env, strict=True)
    cli_args, secret_env = launcher.secrets_to_env(argv)
    assert cli_args == [
        *["build", "--no-cache", "--pull"],
        *["--secret", "id=GIT_AUTH_TOKEN,env=CI_TOOLKIT_SECRET_GIT_AUTH_TOKEN"],
        *["--secret", "id=npm.rc,env=CI_TOOLKIT_SECRET_NPM_RC"],
        *["--secret-file", "aws=/home/u/.aws/credentials", "--ssh", "default"],
        *["--build-context", "alpine=docker-image://alpine:3.20", "--network", "host"],
        *["--output", "type=local,dest=out"],
    ]
    assert secret_env == {"CI_TOOLKIT_SECRET_GIT_AUTH_TOKEN": "s3cr3t-value", "CI_TOOLKIT_SECRET_NPM_RC": "x=y"}
    assert not any("s3cr3t" in a for a in cli_args)


def test_launcher_maps_split_and_merge_inputs() -> None:
    launcher = _load_ci_action()
    env = {"INPUT_PLATFORMS": "linux/arm64", "INPUT_TAGS": "r.io/app", "INPUT_PUSH_BY_DIGEST": "true"}
    argv = launcher.command_line("build", launcher.read_inputs(env), {**env, "RUNNER_TEMP": "/rt"}, strict=True)
    assert argv == [
        *["build", "--platform", "linux/arm64", "--tag", "r.io/app"],
        *["--push-by-digest", "--digest-dir", "/rt/ci-toolkit-digests"],
    ]
    merge = {
        "INPUT_MERGE": "/dl",
        "INPUT_TAGS": "r.io/app:1.0\nr.io/app:latest",
        "INPUT_PLATFORMS": "linux/amd64,linux/arm64",
    }
    assert launcher.command_line("merge", launcher.read_inputs(merge), merge, strict=True) == [
        *["merge", "r.io/app", "--digest-dir", "/dl", "--tag", "1.0", "--tag", "latest"],
        *["--platforms", "linux/amd64,linux/arm64"],
    ]
    two = {**merge, "INPUT_TAGS": "r.io/app:1, r.io/other:1"}
    with pytest.raises(launcher.InputError, match="one repository"):
        launcher.command_line("merge", launcher.read_inputs(two), two, strict=True)
