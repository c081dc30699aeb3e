"""Run CI definitions the way their runners do, against the test bed: the composite steps of
action.yml (GitHub's runner), and the jobs of a GitLab template or a Cirrus file.

Only what these files use is emulated; anything else (an unknown expression, a `uses:` step)
fails the test, so the files cannot drift into something the emulation does not cover."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

REPO = Path(__file__).resolve().parents[3]
PUSH_REGISTRY = "127.0.0.1:5000"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def shared_venv_root(factory: Any) -> Path:
    """One venv root for the whole session: every module's first install puts the toolkit
    there and the others find it already installed (ci-install keys it by content)."""
    path: Path = factory.getbasetemp() / "tool-cache" / "ci-toolkit"  # $RUNNER_TOOL_CACHE/ci-toolkit
    path.mkdir(parents=True, exist_ok=True)
    return path


def copy_checkout(dest: Path) -> Path:
    """A checkout of the working tree as it is now (tracked and new files, not ignored ones)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, check=True
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def make_toolkit_repo(dest: Path) -> Path:
    """A git repository with this working tree at branch v1, for the CI file's clone."""
    repo = copy_checkout(dest)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", "-C", str(repo)]
    subprocess.run([*git, "init", "--quiet", "--initial-branch", "v1"], check=True)
    subprocess.run([*git, "add", "--all"], check=True)
    subprocess.run([*git, "commit", "--quiet", "--message", "snapshot"], check=True)
    return repo


def head_commit(repo: Path) -> str:
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


@contextmanager
def planted_installer(path: Path, canary: Path) -> Iterator[None]:
    """What a local user plants at a predictable path: an installer (and entry scripts) that
    would run with the job's secrets. The canary proves whether any of them ran."""
    scripts = path / "scripts"
    scripts.mkdir(parents=True, exist_ok=True)
    for name in ("ci-install", "ci-build", "ci-sweep", "ci-promote", "ci-pipeline"):
        (scripts / name).write_text(f"#!/bin/sh\ntouch {canary}\n")
        (scripts / name).chmod(0o755)
    try:
        yield
    finally:
        shutil.rmtree(path, ignore_errors=True)


def base_env(**extra: str) -> dict[str, str]:
    """The machine's environment without anything that would configure the toolkit."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CI_TOOLKIT_", "INPUT_", "GITHUB_", "GITLAB_", "CI_", "CIRRUS_", "RUNNER_", "ACTIONS_"))
        and k not in ("CI", "CONTAINER_NAME", "CI_IMAGE_BUILD_EXTRA_ARGS", "VIRTUAL_ENV")
    }
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if "/.venv/" not in p)
    env.update(extra)
    return env


def parse_github_output(text: str) -> dict[str, str]:
    """The $GITHUB_OUTPUT file format: `key=value` lines and `key<<DELIM` heredocs."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        heredoc = "<<" in line and ("=" not in line or line.index("<<") < line.index("="))
        if heredoc:
            key, delim = line.split("<<", 1)
            body: list[str] = []
            while lines[i] != delim:
                body.append(lines[i])
                i += 1
            i += 1
            values[key] = "\n".join(body)
        else:
            key, _, value = line.partition("=")
            values[key] = value
    return values


def parse_dotenv(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            key, _, value = line.partition("=")
            values[key] = value
    return values


def registry_digest(ref: str) -> str:
    """The digest the registry serves for host/repo:tag (HEAD, no body downloaded)."""
    host, _, rest = ref.partition("/")
    repo, _, tag = rest.rpartition(":")
    resp = requests.head(f"http://{host}/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_TYPES}, timeout=30)
    assert resp.status_code == 200, f"{ref}: registry answered {resp.status_code}"
    return resp.headers["Docker-Content-Digest"]


def unique_repo(kind: str) -> str:
    return f"{PUSH_REGISTRY}/ci-toolkit-test/{kind}-{uuid.uuid4().hex[:10]}"


def remove_local_images(refs: list[str]) -> None:
    for ref in refs:
        subprocess.run(["docker", "image", "rm", "--force", ref], capture_output=True, check=False)


# --- GitHub: composite action ---------------------------------------------------------------


@dataclass
class StepRun:
    name: str
    code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]


@dataclass
class ActionRun:
    code: int
    steps: list[StepRun]
    outputs: dict[str, str]
    summary: str
    github_env: dict[str, str] = field(default_factory=dict)

    @property
    def log(self) -> str:
        return "".join(s.stdout + s.stderr for s in self.steps)

    @property
    def error_lines(self) -> list[str]:
        return [ln for s in self.steps for ln in s.stderr.splitlines() if ln.startswith("error:")]


def load_action(action_path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((action_path / "action.yml").read_text())
    return data


def _evaluate(expr: str, ctx: Mapping[str, Any]) -> str:
    parts = expr.split(".")
    if parts[0] == "inputs" and len(parts) == 2:
        return str(ctx["inputs"][parts[1]])
    if parts[:1] == ["github"] and len(parts) == 2 and parts[1] in ctx["github"]:
        return str(ctx["github"][parts[1]])
    if parts[:1] == ["runner"] and len(parts) == 2 and parts[1] in ctx["runner"]:
        return str(ctx["runner"][parts[1]])
    if parts[0] == "steps" and len(parts) == 4 and parts[2] == "outputs":
        return str(ctx["steps"].get(parts[1], {}).get(parts[3], ""))
    raise AssertionError(f"expression not emulated by the test harness: ${{{{ {expr} }}}}")


def substitute(text: str, ctx: Mapping[str, Any]) -> str:
    return EXPRESSION.sub(lambda m: _evaluate(m.group(1), ctx), text)


_CLAUSE = re.compile(r"^\s*([\w.-]+)\s*(==|!=)\s*'([^']*)'\s*$")


def condition(expr: str, ctx: Mapping[str, Any]) -> bool:
    """The `if:` forms action.yml uses: `A == 'x'` / `A != 'x'` joined with `&&`."""
    result = True
    for clause in expr.split("&&"):
        match = _CLAUSE.match(clause)
        assert match, f"if: not emulated by the test harness: {expr}"
        value = _evaluate(match.group(1), ctx)
        result = result and ((value == match.group(3)) == (match.group(2) == "=="))
    return result


def _cache_file(store: Path, key: str) -> Path:
    return store / (re.sub(r"[^A-Za-z0-9_.-]", "_", key) + ".tar")


def emulate_uses(
    step: Mapping[str, Any], ctx: Mapping[str, Any], cache_store: Path, runtime: Mapping[str, str], github_env: Path
) -> dict[str, str]:
    """The actions a step may use, emulated: actions/cache restore and save with a local
    directory as the cache service (a tar per key; restore-keys match the newest by prefix,
    as the service does), and crazy-max/ghaction-github-runtime, which exports every ACTIONS_*
    variable the runner gives a JavaScript action to the job's later steps ($GITHUB_ENV)."""
    uses = str(step["uses"]).split("@")[0]
    with_ = {k: substitute(str(v), ctx) for k, v in (step.get("with") or {}).items()}
    if uses == "crazy-max/ghaction-github-runtime":
        with github_env.open("a") as exported:
            exported.writelines(f"{k}={v}\n" for k, v in runtime.items() if k.startswith("ACTIONS_"))
        return {}
    path = Path(with_["path"])
    if uses == "actions/cache/save":
        cache_store.mkdir(parents=True, exist_ok=True)
        subprocess.run(["tar", "-cf", str(_cache_file(cache_store, with_["key"])), "-C", str(path.parent),
                        path.name], check=True)  # fmt: skip
        return {}
    assert uses == "actions/cache/restore", f"uses: {uses} not emulated by the test harness"
    exact = _cache_file(cache_store, with_["key"])
    found = [exact] if exact.is_file() else []
    prefix = _cache_file(cache_store, with_.get("restore-keys", "")).name.removesuffix(".tar")
    found += sorted(cache_store.glob(f"{prefix}*.tar"), key=lambda p: p.stat().st_mtime, reverse=True)
    if not found or (not with_.get("restore-keys") and not exact.is_file()):
        return {"cache-hit": "false"}
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-xf", str(found[0]), "-C", str(path.parent)], check=True)
    return {"cache-hit": str(found[0] == exact).lower(), "cache-matched-key": found[0].name.removesuffix(".tar")}


def run_action(
    action_path: Path,
    inputs: Mapping[str, str],
    *,
    workspace: Path,
    tool_cache: Path,
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 900,
    actions_cache: Path | None = None,
    runtime: Mapping[str, str] | None = None,
) -> ActionRun:
    """Run action.yml's composite steps as the runner does: expressions substituted in `env:`
    only, each `run:` in `bash --noprofile --norc -eo pipefail`, one $GITHUB_OUTPUT file per
    step, one $GITHUB_STEP_SUMMARY and one $GITHUB_ENV for the job (what a step writes there is
    in the environment of every later step). `runtime` is what the runner gives JavaScript
    actions only (ACTIONS_RUNTIME_TOKEN, ACTIONS_CACHE_URL, ...): never a `run:` step."""
    action = load_action(action_path)
    declared = action.get("inputs", {})
    unknown = set(inputs) - set(declared)
    assert not unknown, f"inputs not declared in action.yml: {sorted(unknown)}"
    assert action["runs"]["using"] == "composite"
    scratch = Path(workspace).parent / f"runner-{uuid.uuid4().hex[:8]}"
    scratch.mkdir()
    summary = scratch / "step_summary.md"
    summary.touch()
    exported_file = scratch / "github_env"
    exported_file.touch()
    run_number = "17"
    github_env = {
        "GITHUB_ACTIONS": "true",
        "CI": "true",
        "GITHUB_RUN_ID": str(uuid.uuid4().int % 10**10),
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_RUN_NUMBER": run_number,
        "GITHUB_JOB": "build",
        "GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567",
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_REF_NAME": "main",
        "GITHUB_REPOSITORY": "example/hello",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_ACTION_PATH": str(action_path),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_ENV": str(exported_file),
        "RUNNER_TEMP": str(scratch),
        "RUNNER_TOOL_CACHE": str(tool_cache),
        "RUNNER_OS": "Linux",
        **(extra_env or {}),
    }
    ctx: dict[str, Any] = {
        "inputs": {name: inputs.get(name, spec.get("default", "")) for name, spec in declared.items()},
        "github": {"action_path": str(action_path), "workspace": str(workspace), "sha": github_env["GITHUB_SHA"]},
        "runner": {"temp": str(scratch), "tool_cache": str(tool_cache)},
        "steps": {},
    }
    results: list[StepRun] = []
    code = 0
    for index, step in enumerate(action["runs"]["steps"]):
        if "if" in step and not condition(step["if"], ctx):
            continue
        if "uses" in step:
            used = emulate_uses(step, ctx, actions_cache or scratch / "actions-cache", runtime or {}, exported_file)
            if "id" in step:
                ctx["steps"][step["id"]] = used
            continue
        assert step.get("shell") == "bash", "every step must say shell: bash"
        assert "${{" not in step["run"], "inputs must reach scripts through env:, never ${{ }} in run:"
        output_file = scratch / f"output-{index}"
        output_file.touch()
        script = scratch / f"step-{index}.sh"
        script.write_text(step["run"])
        env = base_env(**github_env, GITHUB_OUTPUT=str(output_file))
        env.update(parse_github_output(exported_file.read_text()))
        env.update({k: substitute(str(v), ctx) for k, v in (step.get("env") or {}).items()})
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        outputs = parse_github_output(output_file.read_text())
        results.append(StepRun(step.get("name", str(index)), proc.returncode, proc.stdout, proc.stderr, outputs))
        if "id" in step:
            ctx["steps"][step["id"]] = outputs
        if proc.returncode != 0:
            code = proc.returncode
            break
    action_outputs = {name: substitute(spec["value"], ctx) for name, spec in action.get("outputs", {}).items()}
    return ActionRun(code, results, action_outputs, summary.read_text(), github_env)


# --- GitLab / Cirrus: job scripts -----------------------------------------------------------


def expand_variables(value: str, env: Mapping[str, str]) -> str:
    """GitLab's expansion of $VAR and ${VAR} inside `variables:` values."""
    return re.sub(
        r"\$(?:\{(\w+)\}|(\w+))",
        lambda m: env.get(m.group(1) or m.group(2), ""),
        value,
    )


@dataclass
class JobRun:
    code: int
    output: str
    after_code: int
    after_output: str
    job_id: str = ""


def run_lines(lines: list[str], env: Mapping[str, str], cwd: Path, timeout: float = 900) -> tuple[int, str]:
    """Script lines in one bash, stopping at the first failure, as the runner's shell does."""
    script = "set -eo pipefail\n" + "\n".join(lines) + "\n"
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", script],
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout


# --- Releases: a tagged copy of this working tree, built as the release workflow builds it ----


def run_checked(argv: list[str], cwd: Path | None = None, env: Mapping[str, str] | None = None) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{argv}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def tagged_checkout(dest: Path, version: str) -> Path:
    """This working tree committed in a new repository and tagged v<version>."""
    source = copy_checkout(dest)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-C", str(source)]
    run_checked([*git, "init", "--quiet"])
    run_checked([*git, "add", "--all"])
    run_checked([*git, "commit", "--quiet", "--message", "release"])
    run_checked([*git, "tag", f"v{version}"])
    return source


def build_dist(source: Path, outdir: Path) -> list[Path]:
    """`python -m build` (no isolation: the test venv has the backend, from the `test` extra)."""
    import sys

    run_checked([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(outdir), str(source)])
    return sorted(outdir.iterdir())
