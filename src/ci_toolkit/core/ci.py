"""Which CI we run in, and the job's identity: ids, sha, ref, build number.

Business code asks at most "are we in CI?"; everything provider-specific lives here and in
``report``. The environment is always passed in, so tests hand in a plain dict.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

PROVIDERS = ("github", "gitlab", "cirrus", "buildkite", "jenkins", "generic", "local")


@dataclass(frozen=True, kw_only=True)
class CIContext:
    """What the CI says about this job: provider, job and run ids, commit, ref and event."""

    provider: str
    job_id: str
    run_id: str
    run_url: str
    sha: str
    ref: str
    branch: str
    build_number: str
    # The git event, in metadata-action's terms: "branch", "tag", "pr" or "schedule" (empty:
    # unknown). ``tag``/``pr_number`` are set for their events; ``default_branch`` and
    # ``base_ref`` (a PR's target branch) when the CI tells.
    event: str = ""
    tag: str = ""
    pr_number: str = ""
    default_branch: str = ""
    base_ref: str = ""

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
    if not ctx.sha or not ctx.branch or not ctx.event:
        ctx = _with_git_files(ctx, cwd or Path.cwd())
    return ctx


def _with_git_files(ctx: CIContext, cwd: Path) -> CIContext:
    """Fill what the CI left out from the checkout's own files (a local run, a generic CI)."""
    git = read_git(cwd)
    sha = ctx.sha or git.sha
    branch = ctx.branch or (git.branch if not ctx.tag else "")
    tag = ctx.tag or (git.tag if not ctx.branch and not git.branch else "")
    event = ctx.event or ("tag" if tag else "branch" if branch else "")
    ref = ctx.ref or (f"refs/tags/{tag}" if tag else f"refs/heads/{branch}" if branch else "")
    return replace(
        ctx,
        sha=sha,
        ref=ref,
        branch=branch,
        event=event,
        tag=tag,
        default_branch=ctx.default_branch or git.default_branch,
    )


def _event(*, tag: str, pr: str, schedule: bool, branch: str) -> str:
    if schedule:
        return "schedule"
    if tag:
        return "tag"
    if pr:
        return "pr"
    return "branch" if branch else ""


def _github(env: Mapping[str, str]) -> CIContext:
    server = env.get("GITHUB_SERVER_URL", "https://github.com")
    repo = env.get("GITHUB_REPOSITORY", "")
    run_id = env.get("GITHUB_RUN_ID", "")
    attempt = env.get("GITHUB_RUN_ATTEMPT", "1")
    ref = env.get("GITHUB_REF", "")
    tag = ref.removeprefix("refs/tags/") if ref.startswith("refs/tags/") else ""
    pr = m.group(1) if (m := re.match(r"refs/pull/(\d+)/", ref)) else ""
    branch = ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else ""
    schedule = env.get("GITHUB_EVENT_NAME") == "schedule"
    return CIContext(
        provider="github",
        job_id=f"gh-{run_id}-{attempt}-{env.get('GITHUB_JOB', '')}".rstrip("-"),
        run_id=run_id,
        run_url=f"{server}/{repo}/actions/runs/{run_id}" if repo and run_id else "",
        sha=env.get("GITHUB_SHA", ""),
        ref=ref,
        branch=env.get("GITHUB_HEAD_REF") or branch,
        build_number=env.get("GITHUB_RUN_NUMBER", ""),
        event=_event(tag=tag, pr=pr, schedule=schedule, branch=branch),
        tag=tag,
        pr_number=pr,
        default_branch=_github_default_branch(env),
        base_ref=env.get("GITHUB_BASE_REF", ""),
    )


def _github_default_branch(env: Mapping[str, str]) -> str:
    """The repository's default branch, from the event payload the runner writes."""
    path = env.get("GITHUB_EVENT_PATH", "")
    if not path:
        return ""
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    repo = payload.get("repository") if isinstance(payload, dict) else None
    value = repo.get("default_branch", "") if isinstance(repo, dict) else ""
    return value if isinstance(value, str) else ""


def _gitlab(env: Mapping[str, str]) -> CIContext:
    tag = env.get("CI_COMMIT_TAG", "")
    pr = env.get("CI_MERGE_REQUEST_IID", "")
    branch = env.get("CI_COMMIT_BRANCH") or env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "")
    if not branch and not tag:
        branch = env.get("CI_COMMIT_REF_NAME", "")
    return CIContext(
        provider="gitlab",
        job_id=f"gl-{env.get('CI_JOB_ID', '')}",
        run_id=env.get("CI_PIPELINE_ID", ""),
        run_url=env.get("CI_PIPELINE_URL", ""),
        sha=env.get("CI_COMMIT_SHA", ""),
        ref=f"refs/tags/{tag}" if tag else f"refs/heads/{branch}" if branch else "",
        branch=branch,
        build_number=env.get("CI_PIPELINE_IID", ""),
        event=_event(tag=tag, pr=pr, schedule=env.get("CI_PIPELINE_SOURCE") == "schedule", branch=branch),
        tag=tag,
        pr_number=pr,
        default_branch=env.get("CI_DEFAULT_BRANCH", ""),
        base_ref=env.get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", ""),
    )


def _cirrus(env: Mapping[str, str]) -> CIContext:
    build_id = env.get("CIRRUS_BUILD_ID", "")
    tag = env.get("CIRRUS_TAG", "")
    pr = env.get("CIRRUS_PR", "")
    # A PR's CIRRUS_BRANCH is "pull/N"; its source branch has a variable of its own.
    branch = "" if tag else env.get("CIRRUS_HEAD_BRANCH", "") if pr else env.get("CIRRUS_BRANCH", "")
    return CIContext(
        provider="cirrus",
        job_id=f"cirrus-{env.get('CIRRUS_TASK_ID', '')}",
        run_id=build_id,
        run_url=f"https://cirrus-ci.com/build/{build_id}" if build_id else "",
        sha=env.get("CIRRUS_CHANGE_IN_REPO", ""),
        ref=f"refs/tags/{tag}" if tag else f"refs/pull/{pr}/merge" if pr else f"refs/heads/{branch}" if branch else "",
        branch=branch,
        build_number=build_id,
        event=_event(tag=tag, pr=pr, schedule=bool(env.get("CIRRUS_CRON")), branch=branch),
        tag=tag,
        pr_number=pr,
        default_branch=env.get("CIRRUS_DEFAULT_BRANCH", ""),
        base_ref=env.get("CIRRUS_BASE_BRANCH", ""),
    )


def _buildkite(env: Mapping[str, str]) -> CIContext:
    tag = env.get("BUILDKITE_TAG", "")
    branch = "" if tag else env.get("BUILDKITE_BRANCH", "")
    pr = env.get("BUILDKITE_PULL_REQUEST", "")
    pr = "" if pr == "false" else pr
    return CIContext(
        provider="buildkite",
        job_id=f"bk-{env.get('BUILDKITE_JOB_ID', '')}",
        run_id=env.get("BUILDKITE_BUILD_ID", ""),
        run_url=env.get("BUILDKITE_BUILD_URL", ""),
        sha=env.get("BUILDKITE_COMMIT", ""),
        ref=f"refs/tags/{tag}" if tag else f"refs/heads/{branch}" if branch else "",
        branch=branch,
        build_number=env.get("BUILDKITE_BUILD_NUMBER", ""),
        event=_event(tag=tag, pr=pr, schedule=env.get("BUILDKITE_SOURCE") == "schedule", branch=branch),
        tag=tag,
        pr_number=pr,
        default_branch=env.get("BUILDKITE_PIPELINE_DEFAULT_BRANCH", ""),
        base_ref=env.get("BUILDKITE_PULL_REQUEST_BASE_BRANCH", ""),
    )


def _jenkins(env: Mapping[str, str]) -> CIContext:
    tag = env.get("TAG_NAME", "")
    pr = env.get("CHANGE_ID", "")
    branch = "" if tag else (env.get("GIT_BRANCH") or env.get("BRANCH_NAME", "")).removeprefix("origin/")
    return CIContext(
        provider="jenkins",
        job_id=f"jenkins-{env.get('BUILD_TAG', env.get('BUILD_NUMBER', ''))}",
        run_id=env.get("BUILD_ID", ""),
        run_url=env.get("BUILD_URL", ""),
        sha=env.get("GIT_COMMIT", ""),
        ref=f"refs/tags/{tag}" if tag else f"refs/heads/{branch}" if branch else "",
        branch=branch,
        build_number=env.get("BUILD_NUMBER", ""),
        event=_event(tag=tag, pr=pr, schedule=False, branch=branch),
        tag=tag,
        pr_number=pr,
        base_ref=env.get("CHANGE_TARGET", ""),
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


@dataclass(frozen=True, kw_only=True)
class GitHead:
    """The commit, branch and tag a checkout is at."""

    sha: str = ""
    branch: str = ""
    tag: str = ""
    """A tag pointing at HEAD (lightweight, or annotated via packed-refs' peeled lines)."""
    default_branch: str = ""
    """From ``refs/remotes/origin/HEAD``, as ``git clone`` writes it."""


def read_git_head(start: Path) -> tuple[str, str]:
    """HEAD's sha and branch (see ``read_git``)."""
    head = read_git(start)
    return head.sha, head.branch


def read_git(start: Path) -> GitHead:
    """Read HEAD, a tag on it and the default branch from the files, without running git
    (cheap, no subprocess). A damaged .git (unreadable, not UTF-8, odd shapes) reads as
    unknown: the job's identity is a convenience and must not stop a build."""
    for directory in (start, *start.parents):
        git_dir = directory / ".git"
        if git_dir.is_file():
            text = _read(git_dir)
            if text.startswith("gitdir:"):
                git_dir = directory / text.split(":", 1)[1].strip()
        if _is_dir(git_dir):
            sha, branch = _resolve_head(git_dir)
            common = _common_dir(git_dir)
            return GitHead(sha=sha, branch=branch, tag=_tag_at(common, sha), default_branch=_origin_head(common))
    return GitHead()


def _read(path: Path) -> str:
    """A git metadata file's text; "" when it is missing, unreadable or not text."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError, ValueError):
        return ""


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


_SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")


def _common_dir(git_dir: Path) -> Path:
    commondir = _read(git_dir / "commondir")
    return git_dir / commondir if commondir else git_dir


def _tag_at(common: Path, sha: str) -> str:
    if not sha:
        return ""
    tags = common / "refs" / "tags"
    found: list[str] = []
    if _is_dir(tags):
        for path in sorted(tags.rglob("*")):
            if _read(path) == sha:
                found.append(str(path.relative_to(tags)))
    last = ""
    for line in _read(common / "packed-refs").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].startswith("refs/tags/"):
            last = parts[1].removeprefix("refs/tags/")
            if parts[0] == sha:
                found.append(last)
        elif line.startswith("^") and line[1:].strip() == sha and last:
            found.append(last)
    return sorted(found)[-1] if found else ""


def _origin_head(common: Path) -> str:
    text = _read(common / "refs" / "remotes" / "origin" / "HEAD")
    return text.removeprefix("ref:").strip().removeprefix("refs/remotes/origin/") if text.startswith("ref:") else ""


def _resolve_head(git_dir: Path) -> tuple[str, str]:
    head = _read(git_dir / "HEAD")
    if not head.startswith("ref:"):
        return (head, "") if _SHA.fullmatch(head) else ("", "")
    ref = head.split(":", 1)[1].strip()
    if not ref.startswith("refs/") or ".." in ref.split("/"):
        return "", ""
    branch = ref.removeprefix("refs/heads/")
    common = _common_dir(git_dir)
    for base in (git_dir, common):
        sha = _read(base / ref)
        if _SHA.fullmatch(sha):
            return sha, branch
    for line in _read(common / "packed-refs").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] == ref and _SHA.fullmatch(parts[0]):
            return parts[0], branch
    return "", branch
