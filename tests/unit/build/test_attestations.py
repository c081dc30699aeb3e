"""Attestations and annotations on the buildx command line: the toolkit's OCI metadata goes
on manifests, and on the index only when buildx will push one (it refuses otherwise)."""

from __future__ import annotations

import pytest

from ci_toolkit.build.argv import check_annotations, makes_index
from ci_toolkit.core.errors import ToolkitError
from tests.helpers import run_cli

ENV = {"GIT_SHA": "0123456789abcdef0123456789abcdef01234567", "BUILD_NUMBER": "3"}


@pytest.mark.parametrize(
    ("platforms", "provenance", "sbom", "attests", "extra", "env", "expected"),
    [
        (["linux/amd64"], "", "", [], [], {}, True),  # buildx adds min provenance by default
        (["linux/amd64"], "", "", [], [], {"BUILDX_NO_DEFAULT_ATTESTATIONS": "1"}, False),
        (["linux/amd64"], "false", "", [], [], {}, False),
        (["linux/amd64"], "", "", [], ["--provenance", "false"], {}, False),
        (["linux/amd64"], "false", "true", [], [], {}, True),
        (["linux/amd64", "linux/arm64"], "false", "", [], [], {}, True),
        (["linux/amd64"], "false", "", ["type=sbom"], [], {}, True),
    ],
)
def test_makes_index(
    platforms: list[str],
    provenance: str,
    sbom: str,
    attests: list[str],
    extra: list[str],
    env: dict[str, str],
    expected: bool,
) -> None:
    assert makes_index(platforms, provenance, sbom, attests, extra, env) is expected


def test_annotations_are_checked() -> None:
    assert check_annotations(["a=b", "index:org.x=1", "manifest[linux/amd64]:k=v=w"])
    for bad in ("index,manifest:k=v", "=v", "k", "layer:k=v"):
        with pytest.raises(ToolkitError):
            check_annotations([bad])


def _argv(*args: str) -> str:
    result = run_cli(["--dry-run", "build", "--cache-backend", "none", *args, "examples/hello"], env=ENV)
    assert result.code == 0, result.err
    return next(line for line in result.err.splitlines() if "buildx build" in line)


def test_push_puts_metadata_on_index_and_manifests() -> None:
    line = _argv("--push", "-t", "127.0.0.1:5000/x/app:1", "--sbom", "true", "--provenance", "mode=max")
    assert "--provenance=mode=max --sbom=true" in line
    assert "--annotation manifest:org.opencontainers.image.revision=0123456789abcdef" in line
    assert "--annotation index:org.opencontainers.image.revision=0123456789abcdef" in line
    assert "--annotation index:ci-toolkit.build-number=3" in line


def test_no_index_annotations_without_an_index_nor_without_an_output() -> None:
    line = _argv("--push", "-t", "127.0.0.1:5000/x/app:1", "--provenance", "false", "--annotation", "a=b")
    assert "index:" not in line and "--annotation manifest:org.opencontainers.image.created=" in line
    assert line.count("--annotation a=b") == 1
    assert "--annotation" not in _argv("-t", "127.0.0.1:5000/x/app:1")
    assert "--annotation" not in _argv("--push", "-t", "r/a:1", "--set", "oci-annotations=false")


def test_bad_annotation_is_bad_input() -> None:
    result = run_cli(["build", "--annotation", "index,manifest:k=v", "examples/hello"], env=ENV)
    assert result.code == 2 and len(result.error_lines) == 1


def test_build_push_action_options_reach_buildx() -> None:
    line = _argv(
        *("--no-cache", "--pull", "--ssh", "default", "--network", "none"),
        *("--secret-file", "aws=/run/creds", "--output", "type=local,dest=out", "-t", "r/a:1"),
    )
    assert "--secret id=aws,src=/run/creds" in line
    assert "--no-cache --pull --ssh default --network none --output type=local,dest=out" in line


@pytest.mark.parametrize(
    "args",
    [
        ["--output", "type=local,dest=out", "--push", "-t", "r/a:1"],
        ["--secret-file", "noequals"],
        ["--network", "bridge"],
    ],
)
def test_bad_build_options_are_bad_input(args: list[str]) -> None:
    result = run_cli(["build", "--cache-backend", "none", *args, "examples/hello"], env=ENV)
    assert result.code == 2 and len(result.error_lines) == 1, result.err
