from __future__ import annotations

import pytest

from ci_toolkit.core.errors import EXIT_INPUT, ToolkitError
from ci_toolkit.core.refs import is_loopback_host, parse_mirror, parse_reference, registry_base_url, rewrite_to_mirror

HEX = "a" * 64
DIGEST = f"sha256:{HEX}"

VALID = [
    ("ruby", "docker.io/library/ruby:latest"),
    ("ruby:2.1", "docker.io/library/ruby:2.1"),
    ("busybox", "docker.io/library/busybox:latest"),
    ("tutum/wordpress", "docker.io/tutum/wordpress:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest"),
    ("index.docker.io/library/busybox:1", "docker.io/library/busybox:1"),
    ("registry-1.docker.io/tutum/wordpress", "docker.io/tutum/wordpress:latest"),
    ("registry.alloy-wp.com:4999/tutum/wordpress", "registry.alloy-wp.com:4999/tutum/wordpress:latest"),
    ("localhost:5000/a/b:tag@" + DIGEST, "localhost:5000/a/b:tag@" + DIGEST),
    ("localhost/app", "localhost/app:latest"),
    ("localhost:5000/app", "localhost:5000/app:latest"),
    ("127.0.0.1:5001/library/busybox:latest", "127.0.0.1:5001/library/busybox:latest"),
    ("busybox@" + DIGEST, "docker.io/library/busybox@" + DIGEST),
    ("ghcr.io/org/team/app:v1.2.3-rc.1", "ghcr.io/org/team/app:v1.2.3-rc.1"),
    ("a__b/c--d/e.f_g:T_a.g-1", "docker.io/a__b/c--d/e.f_g:T_a.g-1"),
    ("[::1]:5000/app:x", "[::1]:5000/app:x"),
    ("Registry.Example.COM/app", "Registry.Example.COM/app:latest"),
    ("ubuntu:" + "t" * 128, "docker.io/library/ubuntu:" + "t" * 128),
    ("localhost:5000", "docker.io/library/localhost:5000"),
]

INVALID = [
    ("Ubuntu", "lowercase"),
    ("docker.io/Library/busybox", "lowercase"),
    ("ubuntu:" + "t" * 129, "128 characters"),
    ("", "empty"),
    (" busybox", "whitespace"),
    ("busybox:", "tag"),
    ("busybox:-x", "tag"),
    ("busybox@sha256:abc", "digest"),
    ("busybox@sha256:" + "A" * 64, "64 lowercase"),
    ("a//b", "invalid characters"),
    ("-busybox", "invalid characters"),
    ("busybox/", "invalid characters"),
    ("my_registry:5000/app", "registry host"),
    (HEX, "image id"),
    ("a/" + "b" * 260, "255"),
]


@pytest.mark.parametrize(("text", "expected"), VALID)
def test_valid_references_normalise(text: str, expected: str) -> None:
    assert str(parse_reference(text)) == expected


@pytest.mark.parametrize(("text", "why"), INVALID)
def test_invalid_references_are_bad_input(text: str, why: str) -> None:
    with pytest.raises(ToolkitError) as info:
        parse_reference(text)
    assert info.value.exit_code == EXIT_INPUT
    assert why in info.value.message
    assert repr(text) in info.value.message


def test_at_least_25_reference_cases() -> None:
    assert len(VALID) + len(INVALID) >= 25


def test_reference_parts_and_familiar_form() -> None:
    ref = parse_reference("localhost:5000/a/b:tag@" + DIGEST)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == ("localhost:5000", "a/b", "tag", DIGEST)
    assert ref.manifest_ref == DIGEST
    assert parse_reference("ruby").familiar == "ruby:latest"
    assert parse_reference("tutum/wordpress:4").familiar == "tutum/wordpress:4"
    assert not parse_reference("ghcr.io/a/b").is_docker_hub


@pytest.mark.parametrize(
    ("ref", "mirror", "expected"),
    [
        ("busybox", "127.0.0.1:5002", "127.0.0.1:5002/library/busybox:latest"),
        ("ruby:2.1", "mirror.example:5000", "mirror.example:5000/library/ruby:2.1"),
        (
            "tutum/wordpress",
            "harbor.example.com/dockerhub-proxy",
            "harbor.example.com/dockerhub-proxy/tutum/wordpress:latest",
        ),
        ("busybox@" + DIGEST, "http://m.example/", "m.example/library/busybox@" + DIGEST),
    ],
)
def test_rewrite_to_mirror(ref: str, mirror: str, expected: str) -> None:
    assert str(rewrite_to_mirror(parse_reference(ref), parse_mirror(mirror))) == expected


def test_mirror_scheme_and_prefix_are_kept_apart() -> None:
    m = parse_mirror("https://harbor.example.com/dockerhub-proxy/")
    assert (m.scheme, m.host, m.prefix) == ("https", "harbor.example.com", "dockerhub-proxy")
    assert m.address == "harbor.example.com/dockerhub-proxy"


@pytest.mark.parametrize("bad", ["", "not a host", "mirror.example/UPPER", "http://"])
def test_invalid_mirror_is_bad_input(bad: str) -> None:
    with pytest.raises(ToolkitError) as info:
        parse_mirror(bad)
    assert info.value.exit_code == EXIT_INPUT


def test_registry_host_helpers_still_work() -> None:
    assert is_loopback_host("127.0.0.1:5000") and is_loopback_host("localhost")
    assert not is_loopback_host("registry.example.com:5000")
    assert registry_base_url("127.0.0.1:5002") == "http://127.0.0.1:5002"
    assert registry_base_url("reg.example", ["reg.example"]) == "http://reg.example"
    assert registry_base_url("ghcr.io") == "https://ghcr.io"
