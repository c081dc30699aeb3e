"""Tags from the git context, checked against the tables in docker/metadata-action's README
(event -> tags for each rule type), with the CI variables each provider really sets."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from ci_toolkit.build.tags import MetaRequest, compute, parse_rules
from ci_toolkit.core import ci
from ci_toolkit.core.errors import ToolkitError

SHA = "90dd6032fac8bda1b6c4436a2e65de27961ed071"
NOW = datetime(2020, 1, 10, 0, 30, tzinfo=timezone.utc)


def github(ref: str, event: str = "push", **extra: str) -> ci.CIContext:
    env = {"GITHUB_ACTIONS": "true", "GITHUB_REF": ref, "GITHUB_EVENT_NAME": event, "GITHUB_SHA": SHA, **extra}
    return ci.detect(env, cwd=Path("/"))


def tags(ctx: ci.CIContext, rules: str = "", flavor: str = "", images: tuple[str, ...] = ("name/app",)) -> list[str]:
    meta = compute(MetaRequest(images=images, rules=rules, flavor=flavor), ctx, now=NOW)
    return list(meta.tags)


SEMVER = (
    "type=ref,event=branch\ntype=ref,event=pr\ntype=semver,pattern={{version}}\ntype=semver,pattern={{major}}.{{minor}}"
)


# README "Basic" table: the default rules.
@pytest.mark.parametrize(
    ("event", "ref", "expected"),
    [
        ("pull_request", "refs/pull/2/merge", ["name/app:pr-2"]),
        ("push", "refs/heads/master", ["name/app:master"]),
        ("push", "refs/heads/releases/v1", ["name/app:releases-v1"]),
        ("push", "refs/tags/v1.2.3", ["name/app:v1.2.3", "name/app:latest"]),
        ("push", "refs/tags/v2.0.8-beta.67", ["name/app:v2.0.8-beta.67", "name/app:latest"]),
    ],
)
def test_default_rules(event: str, ref: str, expected: list[str]) -> None:
    assert tags(github(ref, event)) == expected


# README "Semver" table.
@pytest.mark.parametrize(
    ("event", "ref", "expected"),
    [
        ("pull_request", "refs/pull/2/merge", ["name/app:pr-2"]),
        ("push", "refs/heads/master", ["name/app:master"]),
        ("push", "refs/heads/releases/v1", ["name/app:releases-v1"]),
        ("push", "refs/tags/v1.2.3", ["name/app:1.2.3", "name/app:1.2", "name/app:latest"]),
        ("push", "refs/tags/v2.0.8-beta.67", ["name/app:2.0.8-beta.67"]),
    ],
)
def test_semver_example(event: str, ref: str, expected: list[str]) -> None:
    assert tags(github(ref, event), SEMVER) == expected


# README type=semver pattern table.
@pytest.mark.parametrize(
    ("tag", "pattern", "expected"),
    [
        ("v1.2.3", "{{raw}}", "v1.2.3"),
        ("v1.2.3", "{{version}}", "1.2.3"),
        ("v1.2.3", "{{major}}.{{minor}}", "1.2"),
        ("v1.2.3", "v{{major}}", "v1"),
        ("v1.2.3", "{{minor}}", "2"),
        ("v1.2.3", "{{patch}}", "3"),
        ("v2.0.8-beta.67", "{{raw}}", "v2.0.8-beta.67"),
        ("v2.0.8-beta.67", "{{version}}", "2.0.8-beta.67"),
        ("v2.0.8-beta.67", "{{major}}.{{minor}}", "2.0.8-beta.67"),
    ],
)
def test_semver_patterns(tag: str, pattern: str, expected: str) -> None:
    meta = compute(
        MetaRequest(rules=f"type=semver,pattern={pattern}", flavor="latest=false"), github(f"refs/tags/{tag}")
    )
    assert list(meta.tags) == [expected]
    assert meta.version == expected


def test_semver_needs_a_tag_or_a_value() -> None:
    assert tags(github("refs/heads/main"), "type=semver,pattern={{version}}") == []
    value = "type=semver,pattern={{version}},value=v1.0.0"
    assert tags(github("refs/heads/main"), value) == ["name/app:1.0.0", "name/app:latest"]
    assert tags(github("refs/tags/release1"), "type=semver,pattern={{version}}") == []


# README type=match table.
@pytest.mark.parametrize(
    ("tag", "pattern", "group", "expected"),
    [
        ("v1.2.3", r"\d.\d.\d", "0", "1.2.3"),
        ("v2.0.8-beta.67", "v(.*)", "1", "2.0.8-beta.67"),
        ("v2.0.8-beta.67", r"v(\d.\d)", "1", "2.0"),
        ("20200110-RC2", r"\d+", "0", "20200110"),
    ],
)
def test_match(tag: str, pattern: str, group: str, expected: str) -> None:
    rule = f'type=match,"pattern={pattern}",group={group}'
    assert tags(github(f"refs/tags/{tag}"), rule, "latest=false", images=()) == [expected]


# README type=ref table.
@pytest.mark.parametrize(
    ("event", "ref", "rule", "expected"),
    [
        ("pull_request", "refs/pull/2/merge", "type=ref,event=pr", ["pr-2"]),
        ("push", "refs/heads/master", "type=ref,event=branch", ["master"]),
        ("push", "refs/heads/my/branch", "type=ref,event=branch", ["my-branch"]),
        ("push", "refs/tags/v1.2.3", "type=ref,event=tag", ["v1.2.3"]),
        ("push", "refs/tags/v2.0.8-beta.67", "type=ref,event=tag", ["v2.0.8-beta.67"]),
        ("push", "refs/heads/master", "type=ref,event=tag", []),
        ("pull_request", "refs/pull/2/merge", "type=ref,event=branch", []),
    ],
)
def test_ref(event: str, ref: str, rule: str, expected: list[str]) -> None:
    assert tags(github(ref, event), rule, "latest=false", images=()) == expected


def test_sha_raw_schedule_and_edge() -> None:
    push = github("refs/heads/master")
    assert tags(push, "type=sha", images=()) == ["sha-90dd603"]
    assert tags(push, "type=sha,format=long", images=()) == [f"sha-{SHA}"]
    assert tags(push, "type=sha,prefix=", images=()) == ["90dd603"]
    assert tags(push, "type=raw,value=foo\ntype=raw,bar\nbaz", images=()) == ["foo", "bar", "baz"]
    assert tags(push, "type=raw,value=mytag-{{branch}}-{{sha}}", images=()) == ["mytag-master-90dd603"]
    assert tags(push, "type=sha,prefix={{branch}}-", images=()) == ["master-90dd603"]
    nightly = github("refs/heads/master", "schedule")
    assert tags(nightly, "type=schedule", images=()) == ["nightly"]
    assert tags(nightly, "type=schedule,pattern={{date 'YYYYMMDD'}}", images=()) == ["20200110"]
    assert tags(push, "type=schedule", images=()) == []
    assert tags(push, "type=edge,branch=master", images=()) == ["edge"]
    assert tags(push, "type=edge,branch=main", images=()) == []


def test_priority_orders_tags_and_names_the_version() -> None:
    rules = "type=sha\ntype=ref,event=branch\ntype=raw,value=first,priority=2000"
    meta = compute(MetaRequest(rules=rules), github("refs/heads/dev"), now=NOW)
    assert list(meta.tag_names) == ["first", "dev", "sha-90dd603"]
    assert meta.version == "first"
    assert meta.labels["org.opencontainers.image.version"] == "first"


def test_flavor_latest_prefix_suffix() -> None:
    tag = github("refs/tags/v1.2.3")
    rules = "type=semver,pattern={{version}}"
    assert tags(tag, rules, "latest=false", images=()) == ["1.2.3"]
    assert tags(github("refs/heads/main"), "type=ref,event=branch", "latest=true", images=()) == ["main", "latest"]
    assert tags(tag, rules, "prefix=foo-\nsuffix=-bar", images=()) == ["foo-1.2.3-bar", "latest"]
    assert tags(tag, rules, "prefix=foo-,onlatest=true", images=()) == ["foo-1.2.3", "foo-latest"]


def test_enable_with_default_branch_expression(tmp_path: Path) -> None:
    rules = "type=raw,value=latest,enable={{is_default_branch}}\ntype=ref,event=branch"
    event = tmp_path / "event.json"
    event.write_text('{"repository": {"default_branch": "main"}}')
    payload = {"GITHUB_EVENT_PATH": str(event)}
    assert tags(github("refs/heads/main", **payload), rules, "latest=false", images=()) == ["main", "latest"]
    gitlab_main = ci.detect(
        {"GITLAB_CI": "true", "CI_COMMIT_BRANCH": "main", "CI_DEFAULT_BRANCH": "main", "CI_COMMIT_SHA": SHA},
        cwd=Path("/"),
    )
    assert tags(gitlab_main, rules, "latest=false", images=()) == ["main", "latest"]
    assert tags(github("refs/heads/dev", **payload), rules, "latest=false", images=()) == ["dev"]


def test_images_and_labels_and_annotations() -> None:
    ctx = github("refs/tags/v1.2.3")
    request = MetaRequest(
        images=("Name/App", "name=ghcr.io/x/y,enable=false", "127.0.0.1:5000/app"),
        rules=SEMVER,
        labels={"org.opencontainers.image.title": "Custom"},
        annotation_levels=("manifest", "index"),
    )
    meta = compute(request, ctx, source_url="https://github.com/octocat/Hello-World", now=NOW)
    assert list(meta.tags) == [
        "name/app:1.2.3",
        "name/app:1.2",
        "name/app:latest",
        "127.0.0.1:5000/app:1.2.3",
        "127.0.0.1:5000/app:1.2",
        "127.0.0.1:5000/app:latest",
    ]
    assert meta.labels == {
        "org.opencontainers.image.title": "Custom",
        "org.opencontainers.image.url": "https://github.com/octocat/Hello-World",
        "org.opencontainers.image.source": "https://github.com/octocat/Hello-World",
        "org.opencontainers.image.version": "1.2.3",
        "org.opencontainers.image.created": "2020-01-10T00:30:00Z",
        "org.opencontainers.image.revision": SHA,
    }
    assert "manifest:org.opencontainers.image.version=1.2.3" in meta.annotations
    assert "index:org.opencontainers.image.version=1.2.3" in meta.annotations


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"GITLAB_CI": "true", "CI_COMMIT_TAG": "v1.2.3"}, ["1.2.3", "1.2", "latest"]),
        (
            {"GITLAB_CI": "true", "CI_MERGE_REQUEST_IID": "7", "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feat/x"},
            ["pr-7"],
        ),
        ({"GITLAB_CI": "true", "CI_COMMIT_BRANCH": "feat/x"}, ["feat-x"]),
        ({"CIRRUS_CI": "true", "CIRRUS_TAG": "v1.2.3"}, ["1.2.3", "1.2", "latest"]),
        ({"CIRRUS_CI": "true", "CIRRUS_PR": "9", "CIRRUS_BRANCH": "pull/9"}, ["pr-9"]),
        ({"CIRRUS_CI": "true", "CIRRUS_BRANCH": "main"}, ["main"]),
        ({"BUILDKITE": "true", "BUILDKITE_TAG": "v1.2.3", "BUILDKITE_BRANCH": "v1.2.3"}, ["1.2.3", "1.2", "latest"]),
        ({"JENKINS_URL": "http://j", "CHANGE_ID": "4", "BRANCH_NAME": "PR-4"}, ["pr-4"]),
    ],
)
def test_other_cis(env: dict[str, str], expected: list[str]) -> None:
    assert tags(ci.detect({**env, "CI_COMMIT_SHA": SHA}, cwd=Path("/")), SEMVER, images=()) == expected


def test_gitlab_schedule() -> None:
    ctx = ci.detect({"GITLAB_CI": "true", "CI_COMMIT_BRANCH": "main", "CI_PIPELINE_SOURCE": "schedule"}, cwd=Path("/"))
    assert tags(ctx, images=()) == ["nightly"]


def test_local_checkout_tag_and_default_branch(tmp_path: Path) -> None:
    git = tmp_path / ".git"
    (git / "refs" / "tags").mkdir(parents=True)
    (git / "refs" / "remotes" / "origin").mkdir(parents=True)
    (git / "HEAD").write_text(SHA + "\n")  # detached, as a CI checkout of a tag is
    (git / "refs" / "tags" / "v3.1.0").write_text(SHA + "\n")
    (git / "refs" / "remotes" / "origin" / "HEAD").write_text("ref: refs/remotes/origin/main\n")
    ctx = ci.detect({}, cwd=tmp_path)
    assert (ctx.event, ctx.tag, ctx.default_branch) == ("tag", "v3.1.0", "main")
    assert tags(ctx, SEMVER, images=()) == ["3.1.0", "3.1", "latest"]


def test_annotated_tag_in_packed_refs(tmp_path: Path) -> None:
    git = tmp_path / ".git"
    git.mkdir()
    (git / "HEAD").write_text(SHA + "\n")
    (git / "packed-refs").write_text(f"# pack-refs\n{'1' * 40} refs/tags/v0.9.0\n^{SHA}\n")
    assert ci.detect({}, cwd=tmp_path).tag == "v0.9.0"


@pytest.mark.parametrize(
    "rules",
    [
        "type=nope",
        "type=ref,event=push",
        "type=sha,format=medium",
        "type=raw,value=x,colour=red",
        "type=raw,value={{nope}}",
    ],
)
def test_bad_rules_are_bad_input(rules: str) -> None:
    with pytest.raises(ToolkitError) as info:
        compute(MetaRequest(rules=rules), github("refs/heads/main"))
    assert info.value.exit_code == 2


def test_empty_rules_are_the_defaults() -> None:
    assert [r.type for r in parse_rules("")] == ["schedule", "ref", "ref", "ref"]
