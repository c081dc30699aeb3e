from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest

from ci_toolkit.core.errors import EXIT_FAILED, ToolkitError
from ci_toolkit.core.refs import parse_mirror
from ci_toolkit.core.report import Reporter
from ci_toolkit.core.settings import Settings
from ci_toolkit.mirror import resolve as mirror

HUB_429 = (
    '{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit. You may increase '
    'the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limits"}]}'
)


@pytest.fixture(autouse=True)
def _fresh_probes() -> Iterator[None]:
    mirror.reset()
    yield
    mirror.reset()


def _reporter() -> tuple[Reporter, io.StringIO]:
    stream = io.StringIO()
    return Reporter(stream=stream), stream


def _settings(**kw: Any) -> Settings:
    return Settings(**kw)


def _probed(address: str, ok: bool, status: int | None = None, detail: str = "down") -> None:
    # The probe cache is the seam: a unit test says what the network answered.
    mirror._probes[address] = mirror.Probe(address, ok, status, detail)


def test_docker_registry_is_the_first_docker_hub_mirror() -> None:
    s = _settings(docker_registry="127.0.0.1:5002", mirrors={"docker.io": ["m2.example", "127.0.0.1:5002"]})
    assert [m.address for m in mirror.mirrors_for("docker.io", s)] == ["127.0.0.1:5002", "m2.example"]
    assert mirror.mirrors_for("ghcr.io", s) == []


def test_default_settings_have_no_mirror_and_no_probe() -> None:
    reporter, stream = _reporter()
    assert mirror.effective_docker_registry(Settings(), reporter) == "docker.io"
    assert mirror.pull_reference("busybox", Settings(), reporter) == "docker.io/library/busybox:latest"
    assert stream.getvalue() == ""


def test_answering_mirror_is_used_for_build_arg_and_pulls() -> None:
    s = _settings(docker_registry="127.0.0.1:5002", hub_registry="127.0.0.1:5001")
    _probed("127.0.0.1:5002", True, 200)
    reporter, stream = _reporter()
    assert mirror.effective_docker_registry(s, reporter) == "127.0.0.1:5002"
    assert mirror.pull_reference("busybox", s, reporter) == "127.0.0.1:5002/library/busybox:latest"
    assert mirror.pull_reference("127.0.0.1:5001/tutum/wordpress:4", s, reporter) == (
        "127.0.0.1:5002/tutum/wordpress:4"
    )
    assert mirror.pull_reference("ghcr.io/a/b:1", s, reporter) == "ghcr.io/a/b:1"
    assert stream.getvalue() == ""


def test_down_mirror_falls_back_to_upstream_with_exactly_one_warning() -> None:
    s = _settings(docker_registry="127.0.0.1:5002", hub_registry="127.0.0.1:5001")
    _probed("127.0.0.1:5002", False, None, "connection refused")
    reporter, stream = _reporter()
    assert mirror.effective_docker_registry(s, reporter) == "127.0.0.1:5001"
    assert mirror.pull_reference("busybox", s, reporter) == "127.0.0.1:5001/library/busybox:latest"
    warnings = [ln for ln in stream.getvalue().splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1
    assert "127.0.0.1:5002" in warnings[0] and "using 127.0.0.1:5001" in warnings[0]


def test_real_docker_hub_fallback_keeps_docker_io() -> None:
    s = _settings(docker_registry="mirror.example:5000")
    _probed("mirror.example:5000", False)
    reporter, _ = _reporter()
    assert mirror.effective_docker_registry(s, reporter) == "docker.io"
    assert mirror.pull_reference("ruby:2.1", s, reporter) == "docker.io/library/ruby:2.1"


def test_second_mirror_is_tried_when_the_first_is_down() -> None:
    s = _settings(mirrors={"docker.io": ["a.example", "harbor.example.com/hub"]})
    _probed("a.example", False)
    _probed("harbor.example.com/hub", True, 401)
    reporter, _ = _reporter()
    assert mirror.pull_reference("busybox", s, reporter) == "harbor.example.com/hub/library/busybox:latest"


def test_mirror_required_fails_naming_the_mirror() -> None:
    s = _settings(docker_registry="127.0.0.1:5002", mirror_required=True)
    _probed("127.0.0.1:5002", False, None, "connection refused")
    with pytest.raises(ToolkitError) as info:
        mirror.effective_docker_registry(s, _reporter()[0])
    assert info.value.exit_code == EXIT_FAILED
    assert "mirror 127.0.0.1:5002" in info.value.message and "mirror-required" in info.value.message


def test_rate_limited_mirror_is_an_error_not_a_fallback() -> None:
    s = _settings(docker_registry="127.0.0.1:5002")
    _probed("127.0.0.1:5002", False, 429, "TOOMANYREQUESTS: You have reached your pull rate limit.")
    with pytest.raises(ToolkitError) as info:
        mirror.effective_docker_registry(s, _reporter()[0])
    message = info.value.message
    assert info.value.exit_code == EXIT_FAILED and "\n" not in message
    assert "rate limit" in message and "127.0.0.1:5002" in message
    assert "mirror" in message and "docker login" in message


def test_error_body_is_summarised() -> None:
    assert mirror._error_text(HUB_429).startswith("TOOMANYREQUESTS: You have reached your pull rate limit")
    assert mirror._error_text("<html>  oops </html>") == "<html> oops </html>"


@pytest.mark.parametrize(
    "text",
    [
        "ERROR: failed to solve: docker.io/library/busybox:latest: 429 Too Many Requests - Server message: "
        "toomanyrequests: You have reached your pull rate limit.",
        "Error response from daemon: toomanyrequests: You have reached your pull rate limit. You may increase",
    ],
)
def test_buildx_and_dockerd_rate_limit_text_is_explained(text: str) -> None:
    explained = mirror.explain_rate_limit(ToolkitError.failed(f"docker buildx build failed (exit 1): {text}"))
    assert explained.message.startswith("pull rate limit reached at docker.io")
    assert "You have reached your pull rate limit" in explained.message


def test_other_failures_are_left_alone() -> None:
    exc = ToolkitError.failed("docker buildx build failed (exit 1): no such file")
    assert mirror.explain_rate_limit(exc) is exc


def test_static_rewrite_does_not_probe() -> None:
    s = _settings(mirrors={"docker.io": ["harbor.example.com/dockerhub-proxy"], "ghcr.io": ["ghcr.m.example"]})
    assert mirror.rewrite_static("busybox", s) == "harbor.example.com/dockerhub-proxy/library/busybox:latest"
    assert mirror.rewrite_static("ghcr.io/o/r:1", s) == "ghcr.m.example/o/r:1"
    assert mirror.rewrite_static("quay.io/o/r", s) == "quay.io/o/r:latest"


def test_mirror_url_honours_scheme_and_insecure() -> None:
    s = _settings(insecure_registries=["reg.lan:5000"])
    assert mirror.mirror_url(parse_mirror("reg.lan:5000"), s) == "http://reg.lan:5000"
    assert mirror.mirror_url(parse_mirror("https://127.0.0.1:5002"), s) == "https://127.0.0.1:5002"
    assert mirror.mirror_url(parse_mirror("m.example/p"), s) == "https://m.example"


def test_rate_limited_registry_is_read_from_the_url_in_the_error() -> None:
    text = (
        "failed to resolve source metadata: unexpected status from HEAD request to "
        "http://127.0.0.1:5002/v2/library/busybox/manifests/latest: 429 Too Many Requests"
    )
    assert mirror.explain_rate_limit(ToolkitError.failed(text)).message.startswith(
        "pull rate limit reached at 127.0.0.1:5002"
    )
    hub = "https://registry-1.docker.io/v2/library/ruby/manifests/2.1: toomanyrequests: You have reached"
    assert "reached at docker.io" in mirror.explain_rate_limit(ToolkitError.failed(hub)).message
