"""CI detection, job identity, log groups, outputs and the step summary."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ci_toolkit.core import ci
from ci_toolkit.core.report import Reporter, write_outputs

SHA = "89abcdef0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("env", "provider", "job_id", "build_number"),
    [
        (
            {
                "GITHUB_ACTIONS": "true",
                "GITHUB_RUN_ID": "77",
                "GITHUB_RUN_ATTEMPT": "2",
                "GITHUB_JOB": "build",
                "GITHUB_RUN_NUMBER": "5",
                "GITHUB_SHA": SHA,
            },
            "github",
            "gh-77-2-build",
            "5",
        ),
        (
            {"GITLAB_CI": "true", "CI": "true", "CI_JOB_ID": "123", "CI_PIPELINE_IID": "9", "CI_COMMIT_SHA": SHA},
            "gitlab",
            "gl-123",
            "9",
        ),
        (
            {
                "CIRRUS_CI": "true",
                "CI": "true",
                "CIRRUS_TASK_ID": "456",
                "CIRRUS_BUILD_ID": "789",
                "CIRRUS_CHANGE_IN_REPO": SHA,
            },
            "cirrus",
            "cirrus-456",
            "789",
        ),
        (
            {"BUILDKITE": "true", "BUILDKITE_JOB_ID": "j", "BUILDKITE_BUILD_NUMBER": "3", "BUILDKITE_COMMIT": SHA},
            "buildkite",
            "bk-j",
            "3",
        ),
        (
            {"JENKINS_URL": "http://j", "BUILD_NUMBER": "11", "BUILD_TAG": "jenkins-x-11", "GIT_COMMIT": SHA},
            "jenkins",
            "jenkins-jenkins-x-11",
            "11",
        ),
        ({"CI": "true", "BUILD_NUMBER": "4", "GIT_SHA": SHA}, "generic", "", "4"),
        ({}, "local", "", ""),
    ],
)
def test_detection(env: dict[str, str], provider: str, job_id: str, build_number: str, tmp_path: Path) -> None:
    ctx = ci.detect(env, tmp_path)
    assert ctx.provider == provider
    assert ctx.job_id == job_id
    assert ctx.build_number == build_number
    assert ctx.in_ci == (provider != "local")
    if env:
        assert ctx.sha == SHA
        assert ctx.build_tag == f"{SHA[:7]}-{build_number}"


def test_github_run_url(tmp_path: Path) -> None:
    env = {"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "o/r", "GITHUB_RUN_ID": "1"}
    assert ci.detect(env, tmp_path).run_url == "https://github.com/o/r/actions/runs/1"


def test_local_reads_sha_and_branch_from_git_files(tmp_path: Path) -> None:
    git = tmp_path / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/topic\n")
    (git / "refs" / "heads" / "topic").write_text(SHA + "\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    ctx = ci.detect({}, sub)
    assert (ctx.sha, ctx.branch) == (SHA, "topic")


def test_local_reads_packed_refs(tmp_path: Path) -> None:
    git = tmp_path / ".git"
    git.mkdir()
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "packed-refs").write_text(f"# pack-refs\n{SHA} refs/heads/main\n")
    assert ci.read_git_head(tmp_path) == (SHA, "main")


def test_github_outputs_use_the_multiline_safe_form(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {"GITHUB_OUTPUT": str(out)}
    write_outputs("github", env, {"digest": "sha256:abc", "metadata": '{\n  "a": 1\n}'})
    text = out.read_text()
    lines = text.splitlines()
    assert lines[0].startswith("digest<<ghadelimiter_")
    delim = lines[0].split("<<", 1)[1]
    assert lines[1:3] == ["sha256:abc", delim]
    meta_start = lines.index(f"metadata<<{lines[3].split('<<', 1)[1]}")
    meta_delim = lines[meta_start].split("<<", 1)[1]
    end = lines.index(meta_delim, meta_start + 1)
    assert "\n".join(lines[meta_start + 1 : end]) == '{\n  "a": 1\n}'


def test_gitlab_outputs_are_a_dotenv_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    written = write_outputs("gitlab", {}, {"digest": "sha256:abc", "multi": "a\nb"})
    assert written == [Path("ci-toolkit.env")]
    lines = (tmp_path / "ci-toolkit.env").read_text().splitlines()
    assert lines == ["CI_TOOLKIT_DIGEST=sha256:abc", 'CI_TOOLKIT_MULTI="a\\nb"']


def test_cirrus_and_local_write_outputs_only_where_asked(tmp_path: Path) -> None:
    assert write_outputs("cirrus", {}, {"digest": "d"}) == []
    assert write_outputs("local", {}, {"digest": "d"}) == []
    target = tmp_path / "o.env"
    assert write_outputs("cirrus", {"CI_TOOLKIT_OUTPUTS_FILE": str(target)}, {"digest": "d"}) == [target]
    assert target.read_text() == "CI_TOOLKIT_DIGEST=d\n"


def _reporter(provider: str, env: dict[str, str] | None = None) -> tuple[Reporter, io.StringIO, io.StringIO]:
    err, out = io.StringIO(), io.StringIO()
    return Reporter(provider=provider, env=env or {}, stream=err, stdout=out), err, out


def test_log_groups_per_provider() -> None:
    gh, err, _ = _reporter("github")
    with gh.group("Build"):
        gh.info("inside")
    assert err.getvalue() == "::group::Build\ninside\n::endgroup::\n"
    gl, err, _ = _reporter("gitlab")
    with gl.group("Build"):
        pass
    text = err.getvalue()
    assert "section_start:" in text and "[collapsed=true]" in text and "section_end:" in text
    plain, err, _ = _reporter("cirrus")
    with plain.group("Build"):
        pass
    assert err.getvalue() == "--- Build\n"


def test_secrets_are_masked_everywhere_and_registered_with_github(tmp_path: Path) -> None:
    rep, err, out = _reporter("github", {"GITHUB_STEP_SUMMARY": str(tmp_path / "s.md")})
    rep.add_secret("s3cr3t-token")
    rep.info("token is s3cr3t-token")
    rep.error("bad s3cr3t-token")
    rep.echo_command(["docker", "login", "-p", "s3cr3t-token"])
    rep.summary("| s3cr3t-token |")
    assert out.getvalue() == ""
    assert err.getvalue().startswith("::add-mask::s3cr3t-token\n")
    assert "s3cr3t-token" not in err.getvalue().partition("\n")[2]
    assert err.getvalue().count("***") == 3
    assert "s3cr3t-token" not in (tmp_path / "s.md").read_text()


def test_local_does_not_emit_workflow_commands() -> None:
    rep, err, out = _reporter("local")
    rep.add_secret("s3cr3t-token")
    rep.warning("careful")
    assert out.getvalue() == ""
    assert err.getvalue() == "warning: careful\n"


def test_step_summary_appends_markdown(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    rep, _, _ = _reporter("github", {"GITHUB_STEP_SUMMARY": str(path)})
    rep.summary("## one")
    rep.summary("## two")
    assert path.read_text() == "## one\n\n## two\n\n"


def test_json_result_goes_to_stdout_human_text_to_stderr() -> None:
    rep, err, out = _reporter("local")
    rep.json_mode = True
    rep.info("progress")
    rep.result({"ok": True}, "ok")
    assert out.getvalue().strip() == '{\n  "ok": true\n}'
    assert err.getvalue() == "progress\n"


def test_published_result_becomes_metadata_and_a_fallback_summary(tmp_path: Path) -> None:
    out_file, summary = tmp_path / "out", tmp_path / "summary.md"
    rep, _, _ = _reporter("github", {"GITHUB_OUTPUT": str(out_file), "GITHUB_STEP_SUMMARY": str(summary)})
    rep.result({"digest": "sha256:abc", "tags": [{"tag": "latest"}]}, "done", outputs={"digest": "sha256:abc"})
    rep.finish("promote")
    text = out_file.read_text()
    assert "digest<<" in text and '{"digest":"sha256:abc","tags":[{"tag":"latest"}]}' in text
    assert summary.read_text().startswith("### ci-toolkit promote")


def test_a_command_summary_replaces_the_fallback(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    rep, _, _ = _reporter("github", {"GITHUB_STEP_SUMMARY": str(summary)})
    rep.result({"digest": "d"}, "done", outputs={})
    rep.summary("## built")
    rep.finish("build")
    assert summary.read_text() == "## built\n\n"
