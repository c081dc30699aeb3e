"""The registry client against an in-memory session: retries, Retry-After, auth flows,
digest checks. No sockets: the session object is the boundary."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.report import Reporter
from ci_toolkit.registry.auth import Credentials, parse_challenge, resolve_credentials
from ci_toolkit.registry.client import (
    OCI_INDEX,
    Manifest,
    RegistryClient,
    RetryPolicy,
    parse_reference,
    sha256_digest,
)


class Resp:
    def __init__(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        self.content = body
        self.headers = requests.structures.CaseInsensitiveDict(headers or {})

    def json(self) -> Any:
        return json.loads(self.content)

    def close(self) -> None:
        pass


Handler = Callable[[str, str, dict[str, str]], Resp]


class FakeSession:
    def __init__(self, handler: Handler, token_handler: Callable[..., Resp] | None = None) -> None:
        self.handler = handler
        self.token_handler = token_handler
        self.calls: list[tuple[str, str, dict[str, str]]] = []
        self.token_calls: list[dict[str, Any]] = []

    def request(self, method: str, url: str, *, headers: dict[str, str], **kw: Any) -> Resp:
        self.calls.append((method, url, dict(headers)))
        return self.handler(method, url, headers)

    def get(self, url: str, **kw: Any) -> Resp:
        self.token_calls.append({"url": url, **kw})
        assert self.token_handler is not None
        return self.token_handler(url, **kw)

    post = get


def client(handler: Handler, **kw: Any) -> tuple[RegistryClient, FakeSession, list[float]]:
    slept: list[float] = []
    session = FakeSession(handler, kw.pop("token_handler", None))
    c = RegistryClient(
        "reg.example:5000",
        session=session,  # type: ignore[arg-type]
        sleep=slept.append,
        rng=random.Random(1),
        retry=kw.pop("retry", RetryPolicy(attempts=4)),
        **kw,
    )
    return c, session, slept


INDEX = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}, indent=3).encode()
INDEX_DIGEST = sha256_digest(INDEX)


def ok_index(method: str, url: str, headers: dict[str, str]) -> Resp:
    return Resp(200, INDEX, {"Content-Type": OCI_INDEX, "Docker-Content-Digest": INDEX_DIGEST})


def test_get_manifest_keeps_exact_bytes_and_sends_accept_for_all_four_types() -> None:
    c, session, _ = client(ok_index)
    manifest = c.get_manifest("app", "v1")
    assert manifest is not None
    assert manifest.body == INDEX and manifest.digest == INDEX_DIGEST and manifest.is_index
    accept = session.calls[0][2]["Accept"]
    for media_type in ("oci.image.index", "oci.image.manifest", "manifest.list.v2", "distribution.manifest.v2"):
        assert media_type in accept


def test_a_digest_header_that_does_not_match_the_bytes_is_refused() -> None:
    c, _, _ = client(
        lambda m, u, h: Resp(200, INDEX, {"Content-Type": OCI_INDEX, "Docker-Content-Digest": "sha256:" + "0" * 64})
    )
    with pytest.raises(ToolkitError, match="hash to"):
        c.get_manifest("app", "v1")


def test_put_sends_exact_bytes_with_their_content_type_and_checks_the_digest() -> None:
    seen: dict[str, Any] = {}

    def handler(method: str, url: str, headers: dict[str, str]) -> Resp:
        seen.update(headers)
        return Resp(201, b"", {"Docker-Content-Digest": "sha256:" + "1" * 64})

    c, _, _ = client(handler)
    with pytest.raises(ToolkitError, match="registry stored"):
        c.put_manifest("app", "latest", Manifest(INDEX, OCI_INDEX, INDEX_DIGEST))
    assert seen["Content-Type"] == OCI_INDEX


def test_429_with_retry_after_is_honoured_then_succeeds() -> None:
    answers = [Resp(429, b"", {"Retry-After": "3"}), Resp(503)]

    def handler(method: str, url: str, headers: dict[str, str]) -> Resp:
        return answers.pop(0) if answers else ok_index(method, url, headers)

    c, _, slept = client(handler)
    assert c.get_manifest("app", "v1") is not None
    assert 3.0 <= slept[0] <= 3.5  # Retry-After plus a little jitter
    assert 0.5 <= slept[1] <= 1.0  # second retry: backoff 0.5 * 2, equal jitter
    assert c.request_count == 3


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(backoff=1.0, max_backoff=4.0)
    rng = random.Random(7)
    delays = [policy.delay(n, None, rng) for n in range(6)]
    assert 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0 and 2.0 <= delays[2] <= 4.0
    assert all(2.0 <= d <= 4.0 for d in delays[3:])


def test_persistent_503_fails_with_one_line_after_the_attempts() -> None:
    c, session, slept = client(lambda m, u, h: Resp(503))
    with pytest.raises(ToolkitError) as info:
        c.get_manifest("app", "v1")
    assert "failed after 4 attempts: HTTP 503" in info.value.message
    assert "\n" not in info.value.message
    assert len(session.calls) == 4 and len(slept) == 3


def test_retry_after_longer_than_the_limit_fails_at_once() -> None:
    c, session, slept = client(lambda m, u, h: Resp(429, b"", {"Retry-After": "3600"}))
    with pytest.raises(ToolkitError, match="retry after 3600s"):
        c.get_manifest("app", "v1")
    assert len(session.calls) == 1 and slept == []


def test_connection_errors_and_timeouts_are_retried() -> None:
    errors: list[Exception] = [requests.ConnectionError("Connection reset by peer"), requests.ReadTimeout("slow")]

    def handler(method: str, url: str, headers: dict[str, str]) -> Resp:
        if errors:
            raise errors.pop(0)
        return ok_index(method, url, headers)

    c, _, slept = client(handler)
    assert c.get_manifest("app", "v1") is not None
    assert len(slept) == 2


def test_bearer_challenge_fetches_a_token_with_basic_credentials_and_all_scopes() -> None:
    def handler(method: str, url: str, headers: dict[str, str]) -> Resp:
        if headers.get("Authorization") != "Bearer tok-123":
            return Resp(
                401,
                b"",
                {
                    "WWW-Authenticate": 'Bearer realm="https://auth.example/token",service="reg",scope="repository:app:pull"'
                },
            )
        return ok_index(method, url, headers)

    def token_handler(url: str, **kw: Any) -> Resp:
        return Resp(200, json.dumps({"token": "tok-123"}).encode())

    reporter = Reporter()
    c, session, _ = client(
        handler,
        token_handler=token_handler,
        credentials=Credentials(username="u", password="s3cret-pw", source="test"),
        reporter=reporter,
    )
    c.want_scope("other", "pull,push")
    assert c.get_manifest("app", "v1") is not None
    call = session.token_calls[0]
    assert call["url"] == "https://auth.example/token"
    assert call["auth"] == ("u", "s3cret-pw")
    assert call["params"]["service"] == "reg"
    assert call["params"]["scope"] == ["repository:app:pull", "repository:other:pull,push"]
    # Both the password and the token are masked in anything we print.
    assert reporter.masker("s3cret-pw tok-123") == "*** ***"


def test_basic_challenge_uses_the_credentials_and_a_second_401_is_an_auth_failure() -> None:
    def handler(method: str, url: str, headers: dict[str, str]) -> Resp:
        return Resp(401, b"", {"WWW-Authenticate": 'Basic realm="x"'})

    c, session, _ = client(handler, credentials=Credentials(username="u", password="wrong-pw", source="settings"))
    with pytest.raises(ToolkitError) as info:
        c.get_manifest("app", "v1")
    assert info.value.message.startswith("authentication failed for reg.example:5000")
    assert "wrong-pw" not in info.value.message
    expected = "Basic " + base64.b64encode(b"u:wrong-pw").decode()
    assert session.calls[1][2]["Authorization"] == expected
    assert len(session.calls) == 2


def test_anonymous_basic_challenge_is_an_auth_failure() -> None:
    c, _, _ = client(lambda m, u, h: Resp(401, b"", {"WWW-Authenticate": 'Basic realm="x"'}))
    with pytest.raises(ToolkitError, match=r"authentication failed for reg\.example:5000 \(no credentials\)"):
        c.ping()


def test_mount_that_would_need_an_upload_is_cancelled_and_fails() -> None:
    def handler(method: str, url: str, headers: dict[str, str]) -> Resp:
        if method == "POST":
            return Resp(202, b"", {"Location": "http://reg.example:5000/v2/b/blobs/uploads/abc"})
        return Resp(204)

    c, session, _ = client(handler)
    with pytest.raises(ToolkitError, match="never uploads layers"):
        c.mount_blob("b", "sha256:" + "2" * 64, "a")
    assert session.calls[-1][0] == "DELETE"


def test_parse_challenge_handles_quoted_commas() -> None:
    ch = parse_challenge('Bearer realm="https://a/token",service="r",scope="repository:x:pull,push"')
    assert ch.scheme == "bearer"
    assert ch.params == {"realm": "https://a/token", "service": "r", "scope": "repository:x:pull,push"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5000/app:v1", ("127.0.0.1:5000", "app", "v1", "")),
        ("localhost/a/b@sha256:" + "a" * 64, ("localhost", "a/b", "", "sha256:" + "a" * 64)),
        ("busybox:1.36", ("docker.io", "library/busybox", "1.36", "")),
        ("reg.io:443/team/app:build-12", ("reg.io:443", "team/app", "build-12", "")),
    ],
)
def test_parse_reference(text: str, expected: tuple[str, str, str, str]) -> None:
    ref = parse_reference(text)
    assert (ref.host, ref.repository, ref.tag, ref.digest) == expected


@pytest.mark.parametrize("text", ["127.0.0.1:5000/app", "127.0.0.1:5000/App:v1", "r.io/app@sha256:xyz", "r.io/a:b:c/d"])
def test_parse_reference_rejects_bad_input(text: str) -> None:
    with pytest.raises(ToolkitError) as info:
        parse_reference(text)
    assert info.value.exit_code == 2


def test_credentials_from_settings_win_and_need_both_halves(tmp_path: Path) -> None:
    creds = resolve_credentials("r.io", user="u", password="p", env={"HOME": str(tmp_path)})
    assert creds is not None and (creds.username, creds.password) == ("u", "p")
    with pytest.raises(ToolkitError) as info:
        resolve_credentials("r.io", user="u", password="", env={})
    assert info.value.exit_code == 2


def test_credentials_from_docker_config_auths(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps({"auths": {"https://r.io": {"auth": base64.b64encode(b"alice:pw-from-config").decode()}}})
    )
    creds = resolve_credentials("r.io", env={"DOCKER_CONFIG": str(tmp_path)})
    assert creds is not None and (creds.username, creds.password) == ("alice", "pw-from-config")
    assert resolve_credentials("other.io", env={"DOCKER_CONFIG": str(tmp_path)}) is None
    assert resolve_credentials("r.io", env={"DOCKER_CONFIG": str(tmp_path / "missing")}) is None


def _realm_challenge(realm: str) -> Handler:
    def handler(method: str, url: str, headers: dict[str, str]) -> Resp:
        if headers.get("Authorization") != "Bearer tok-123":
            return Resp(401, b"", {"WWW-Authenticate": f'Bearer realm="{realm}",service="reg"'})
        return ok_index(method, url, headers)

    return handler


def _token(url: str, **kw: Any) -> Resp:
    return Resp(200, json.dumps({"token": "tok-123"}).encode())


def test_credentials_never_go_to_a_plain_http_realm_on_another_host() -> None:
    creds = Credentials(username="u", password="s3cret-pw", source="test")
    c, session, _ = client(_realm_challenge("http://evil.example/token"), token_handler=_token, credentials=creds)
    with pytest.raises(ToolkitError) as info:
        c.get_manifest("app", "v1")
    assert "plain http on another host" in info.value.message and "evil.example" in info.value.message
    assert session.token_calls == []


@pytest.mark.parametrize(
    ("realm", "creds"),
    [
        ("http://reg.example:5001/token", True),  # the registry's own host, another port
        ("https://auth.example/token", True),
        ("http://other.example/token", False),  # anonymous: nothing to leak
    ],
)
def test_credentials_go_to_an_https_realm_or_the_registrys_own_host(realm: str, creds: bool) -> None:
    credentials = Credentials(username="u", password="s3cret-pw", source="test") if creds else None
    c, session, _ = client(_realm_challenge(realm), token_handler=_token, credentials=credentials)
    assert c.get_manifest("app", "v1") is not None
    assert session.token_calls[0]["url"] == realm
