"""Which CI we run in, and the job's identity: ids, sha, ref, build number.

Business code asks at most "are we in CI?"; everything provider-specific lives here and in
``report``. The environment is always passed in, so tests hand in a plain dict.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROVIDERS = ("github", "gitlab", "cirrus", "buildkite", "jenkins", "generic", "local")


@dataclass(frozen=True, kw_only=True)
class CIContext:
    provider: str
    job_id: str
    run_id: str
    run_url: str
    sha: str
    ref: str
    branch: str
    build_number: str

    @property
    def in_ci(self) -> bool:
        return self.provider != "local"

    @property
    def build_tag(self) -> str:
        """An immutable, valid Docker tag: ``<short sha>-<build number>`` when a sha is known."""
        number = _tag_safe(self.build_number) or "0"
        if self.sha:
            return f"{self.sha[:7]}-{number}"[:128]
        return number[:128]


def _tag_safe(text: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", text)
    return cleaned.lstrip(".-")


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def detect_provider(env: Mapping[str, str]) -> str:
    if env.get("GITHUB_ACTIONS") == "true":
        return "github"
    if env.get("GITLAB_CI"):
        return "gitlab"
    if env.get("CIRRUS_CI"):
        return "cirrus"
    if env.get("BUILDKITE"):
        return "buildkite"
    if env.get("JENKINS_URL") or env.get("JENKINS_HOME"):
        return "jenkins"
    if _truthy(env.get("CI")):
        return "generic"
    return "local"


def detect(env: Mapping[str, str], cwd: Path | None = None) -> CIContext:
    provider = detect_provider(env)
    reader = _READERS.get(provider, _generic)
    ctx = reader(env)
    if not ctx.sha or not ctx.branch:
        sha, branch = read_git_head(cwd or Path.cwd())
        ctx = CIContext(
            provider=ctx.provider,
            job_id=ctx.job_id,
            run_id=ctx.run_id,
            run_url=ctx.run_url,
            sha=ctx.sha or sha,
            ref=ctx.ref or (f"refs/heads/{branch}" if branch else ""),
            branch=ctx.branch or branch,
            build_number=ctx.build_number,
        )
    return ctx


def _github(env: Mapping[str, str]) -> CIContext:
    server = env.get("GITHUB_SERVER_URL", "https://github.com")
    repo = env.get("GITHUB_REPOSITORY", "")
    run_id = env.get("GITHUB_RUN_ID", "")
    attempt = env.get("GITHUB_RUN_ATTEMPT", "1")
    ref = env.get("GITHUB_REF", "")
    return CIContext(
        provider="github",
        job_id=f"gh-{run_id}-{attempt}-{env.get('GITHUB_JOB', '')}".rstrip("-"),
        run_id=run_id,
        run_url=f"{server}/{repo}/actions/runs/{run_id}" if repo and run_id else "",
        sha=env.get("GITHUB_SHA", ""),
        ref=ref,
        branch=env.get("GITHUB_HEAD_REF") or env.get("GITHUB_REF_NAME", ""),
        build_number=env.get("GITHUB_RUN_NUMBER", ""),
    )


def _gitlab(env: Mapping[str, str]) -> CIContext:
    branch = env.get("CI_COMMIT_BRANCH") or env.get("CI_COMMIT_REF_NAME", "")
    return CIContext(
        provider="gitlab",
        job_id=f"gl-{env.get('CI_JOB_ID', '')}",
        run_id=env.get("CI_PIPELINE_ID", ""),
        run_url=env.get("CI_PIPELINE_URL", ""),
        sha=env.get("CI_COMMIT_SHA", ""),
        ref=f"refs/heads/{branch}" if branch else env.get("CI_COMMIT_TAG", ""),
        branch=branch,
        build_number=env.get("CI_PIPELINE_IID", ""),
    )


def _cirrus(env: Mapping[str, str]) -> CIContext:
    build_id = env.get("CIRRUS_BUILD_ID", "")
    branch = env.get("CIRRUS_BRANCH", "")
    return CIContext(
        provider="cirrus",
        job_id=f"cirrus-{env.get('CIRRUS_TASK_ID', '')}",
        run_id=build_id,
        run_url=f"https://cirrus-ci.com/build/{build_id}" if build_id else "",
        sha=env.get("CIRRUS_CHANGE_IN_REPO", ""),
        ref=f"refs/heads/{branch}" if branch else "",
        branch=branch,
        build_number=build_id,
    )


def _buildkite(env: Mapping[str, str]) -> CIContext:
    branch = env.get("BUILDKITE_BRANCH", "")
    return CIContext(
        provider="buildkite",
        job_id=f"bk-{env.get('BUILDKITE_JOB_ID', '')}",
        run_id=env.get("BUILDKITE_BUILD_ID", ""),
        run_url=env.get("BUILDKITE_BUILD_URL", ""),
        sha=env.get("BUILDKITE_COMMIT", ""),
        ref=f"refs/heads/{branch}" if branch else "",
        branch=branch,
        build_number=env.get("BUILDKITE_BUILD_NUMBER", ""),
    )


def _jenkins(env: Mapping[str, str]) -> CIContext:
    branch = (env.get("GIT_BRANCH") or env.get("BRANCH_NAME", "")).removeprefix("origin/")
    return CIContext(
        provider="jenkins",
        job_id=f"jenkins-{env.get('BUILD_TAG', env.get('BUILD_NUMBER', ''))}",
        run_id=env.get("BUILD_ID", ""),
        run_url=env.get("BUILD_URL", ""),
        sha=env.get("GIT_COMMIT", ""),
        ref=f"refs/heads/{branch}" if branch else "",
        branch=branch,
        build_number=env.get("BUILD_NUMBER", ""),
    )


def _generic(env: Mapping[str, str]) -> CIContext:
    provider = "generic" if _truthy(env.get("CI")) else "local"
    return CIContext(
        provider=provider,
        job_id=env.get("CI_JOB_ID", ""),
        run_id=env.get("BUILD_ID", ""),
        run_url="",
        sha=env.get("GIT_SHA", ""),
        ref="",
        branch=env.get("GIT_BRANCH", ""),
        build_number=env.get("BUILD_NUMBER", ""),
    )


_READERS = {
    "github": _github,
    "gitlab": _gitlab,
    "cirrus": _cirrus,
    "buildkite": _buildkite,
    "jenkins": _jenkins,
}


def read_git_head(start: Path) -> tuple[str, str]:
    """Read HEAD's sha and branch from the files, without running git (cheap, no subprocess)."""
    for directory in (start, *start.parents):
        git_dir = directory / ".git"
        if git_dir.is_file():
            text = git_dir.read_text(errors="replace").strip()
            if text.startswith("gitdir:"):
                git_dir = (directory / text.split(":", 1)[1].strip()).resolve()
        if git_dir.is_dir():
            return _resolve_head(git_dir)
    return "", ""


def _resolve_head(git_dir: Path) -> tuple[str, str]:
    try:
        head = (git_dir / "HEAD").read_text().strip()
    except OSError:
        return "", ""
    if not head.startswith("ref:"):
        return head, ""
    ref = head.split(":", 1)[1].strip()
    branch = ref.removeprefix("refs/heads/")
    common = git_dir
    commondir = git_dir / "commondir"
    if commondir.is_file():
        common = (git_dir / commondir.read_text().strip()).resolve()
    for base in (git_dir, common):
        ref_file = base / ref
        if ref_file.is_file():
            return ref_file.read_text().strip(), branch
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == ref:
                return parts[0], branch
    return "", branch
