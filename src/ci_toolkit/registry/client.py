"""A small OCI distribution (Docker Registry v2) client on ``core.http``: manifests by the exact
bytes, blob mounts, token/basic/anonymous auth, and retries with backoff and jitter.

Promotion and merging never move a layer; ``upload_blob`` is there for ``layout.push_layout``
(a build pushed by digest from an OCI layout, since buildx cannot push by digest on every driver).
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import json
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ci_toolkit.core import refs
from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.http import Response, Session, TransportError
from ci_toolkit.core.refs import registry_base_url
from ci_toolkit.core.report import Reporter
from ci_toolkit.core.retry import RETRY_STATUSES
from ci_toolkit.core.retry import RetryPolicy as RetryPolicy  # re-exported: promote and merge take it from here
from ci_toolkit.core.settings import Settings
from ci_toolkit.registry.auth import (
    DOCKER_HUB_HOSTS,
    Challenge,
    Credentials,
    check_token_realm,
    parse_challenge,
    resolve_credentials,
)

TYPE_CHECKING = False  # not typing's: importing typing costs every command's start-up (CONTRIBUTING)
if TYPE_CHECKING:
    from typing import Any, BinaryIO

# What a registry must answer in Docker-Content-Digest for the manifests we copy.
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_TYPES = (OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST)
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
ACCEPT = ", ".join(MANIFEST_TYPES)

MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # the distribution spec's recommended limit
MAX_CONFIG_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Reference:
    """``host/repository`` plus a tag and/or digest."""

    host: str
    repository: str
    tag: str = ""
    digest: str = ""

    @property
    def ref(self) -> str:
        return self.digest or self.tag

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.host, self.repository, tag, "")

    def __str__(self) -> str:
        text = f"{self.host}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str) -> Reference:
    """An immutable source or a target: the Docker reference grammar (``refs``), but the tag
    or digest must be written out, since an implied ``latest`` is exactly what promotion
    must not guess."""
    parsed = refs.parse_reference(text)
    if not refs.has_explicit_version(text):
        raise ToolkitError.bad_input(f"{text!r} needs a tag or a digest")
    return Reference(parsed.domain, parsed.path, parsed.tag, parsed.digest)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Manifest:
    body: bytes = field(repr=False)
    media_type: str
    digest: str

    def parsed(self) -> dict[str, Any]:
        data = _json(self.body)
        if not isinstance(data, dict):
            raise ToolkitError.failed(f"manifest {self.digest} is not a JSON object")
        return data

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


class RegistryClient:
    """One registry host. Not thread-safe; one per promotion."""

    def __init__(
        self,
        host: str,
        *,
        credentials: Credentials | None = None,
        insecure: tuple[str, ...] = (),
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen, so one shared default is safe
        reporter: Reporter | None = None,
        session: Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.host = host
        api_host = "registry-1.docker.io" if host in DOCKER_HUB_HOSTS else host
        self.base_url = registry_base_url(api_host, insecure)
        self.credentials = credentials
        self.retry = retry
        self.reporter = reporter or Reporter()
        self.request_count = 0
        self._session = session if session is not None else Session()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._scopes: set[str] = set()
        self._authorization = ""
        if credentials:
            for secret in credentials.secrets:
                self.reporter.add_secret(secret)

    # ------------------------------------------------------------------ public API
    def want_scope(self, repository: str, actions: str) -> None:
        """Declare the scopes a token should carry, so one token serves the whole promotion."""
        self._scopes.add(f"repository:{repository}:{actions}")

    def ping(self) -> None:
        """``GET /v2/``: reachable, speaks the v2 API, and our credentials (if any) work."""
        resp = self._request("GET", "/v2/", what="ping")
        if resp.status_code != 200:
            raise self._unexpected(resp, "ping")

    def get_manifest(self, repository: str, ref: str) -> Manifest | None:
        what = f"get manifest {repository}:{ref}"
        resp = self._request("GET", f"/v2/{repository}/manifests/{ref}", headers={"Accept": ACCEPT}, what=what)
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise self._unexpected(resp, what)
        body = resp.content
        if len(body) > MAX_MANIFEST_BYTES:
            raise ToolkitError.failed(f"{what}: manifest larger than {MAX_MANIFEST_BYTES} bytes")
        digest = sha256_digest(body)
        claimed = resp.headers.get("Docker-Content-Digest", "")
        if claimed and claimed != digest:
            raise ToolkitError.failed(f"{what}: registry says {claimed} but the bytes hash to {digest}")
        if ref.startswith("sha256:") and ref != digest:
            raise ToolkitError.failed(f"{what}: received bytes hash to {digest}")
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        if media_type not in MANIFEST_TYPES:
            doc = _json(body)
            media_type = str(doc.get("mediaType", "") if isinstance(doc, dict) else "") or media_type
        if media_type not in MANIFEST_TYPES:
            raise ToolkitError.failed(f"{what}: unsupported manifest type {media_type!r}")
        return Manifest(body, media_type, digest)

    def head_manifest(self, repository: str, ref: str) -> str | None:
        """The digest a tag points to now, or None."""
        what = f"check manifest {repository}:{ref}"
        resp = self._request("HEAD", f"/v2/{repository}/manifests/{ref}", headers={"Accept": ACCEPT}, what=what)
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise self._unexpected(resp, what)
        digest = resp.headers.get("Docker-Content-Digest", "")
        if not _DIGEST.match(digest):
            # Some registries omit the header on HEAD; the body settles it.
            manifest = self.get_manifest(repository, ref)
            return manifest.digest if manifest else None
        return digest

    def put_manifest(self, repository: str, ref: str, manifest: Manifest) -> str:
        """PUT the exact bytes; returns the digest, checked against what the registry reports."""
        what = f"put manifest {repository}:{ref}"
        resp = self._request(
            "PUT",
            f"/v2/{repository}/manifests/{ref}",
            headers={"Content-Type": manifest.media_type},
            data=manifest.body,
            what=what,
        )
        if resp.status_code not in (200, 201, 202):
            raise self._unexpected(resp, what)
        claimed = resp.headers.get("Docker-Content-Digest", "")
        if claimed and claimed != manifest.digest:
            raise ToolkitError.failed(f"{what}: registry stored {claimed}, expected {manifest.digest}")
        return manifest.digest

    def blob_exists(self, repository: str, digest: str) -> bool:
        what = f"check blob {repository}@{digest[:19]}"
        resp = self._request("HEAD", f"/v2/{repository}/blobs/{digest}", what=what)
        if resp.status_code == 404:
            return False
        if resp.status_code != 200:
            raise self._unexpected(resp, what)
        return True

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> None:
        """Cross-repository mount: the registry links the blob, no bytes move. A registry that
        answers 202 (would need an upload) gets its session cancelled and we fail."""
        what = f"mount blob {digest[:19]} from {from_repository} into {repository}"
        resp = self._request(
            "POST",
            f"/v2/{repository}/blobs/uploads/",
            params={"mount": digest, "from": from_repository},
            what=what,
        )
        if resp.status_code == 201:
            return
        if resp.status_code == 202:
            location = resp.headers.get("Location", "")
            if location:
                self._request("DELETE", location, what=f"cancel upload for {digest[:19]}")
            raise ToolkitError.failed(
                f"{self.host} would not mount {digest[:19]} from {from_repository} into {repository}; "
                "promotion never uploads layers"
            )
        raise self._unexpected(resp, what)

    def get_blob_json(self, repository: str, digest: str) -> dict[str, Any]:
        """A small JSON blob (an image config), verified against its digest."""
        what = f"get config {repository}@{digest[:19]}"
        resp = self._request("GET", f"/v2/{repository}/blobs/{digest}", what=what)
        if resp.status_code != 200:
            raise self._unexpected(resp, what)
        body = resp.content
        if len(body) > MAX_CONFIG_BYTES or sha256_digest(body) != digest:
            raise ToolkitError.failed(f"{what}: content does not match its digest")
        data = _json(body)
        return data if isinstance(data, dict) else {}

    def referrers(self, repository: str, digest: str) -> list[dict[str, Any]] | None:
        """OCI 1.1 ``GET /v2/<repo>/referrers/<digest>``: the descriptors of manifests whose
        ``subject`` is ``digest``; None when the registry has no referrers API."""
        what = f"list referrers of {repository}@{digest[:19]}"
        resp = self._request("GET", f"/v2/{repository}/referrers/{digest}", headers={"Accept": OCI_INDEX}, what=what)
        if resp.status_code in (400, 404, 405):
            return None
        if resp.status_code != 200:
            raise self._unexpected(resp, what)
        try:
            data = json.loads(resp.content)
        except ValueError:
            return None
        manifests = data.get("manifests") if isinstance(data, dict) else None
        return [m for m in manifests if isinstance(m, dict)] if isinstance(manifests, list) else None

    # ------------------------------------------------------------------ transport
    def upload_blob(self, repository: str, digest: str, source: Path) -> bool:
        """Upload one blob from a file unless the repository has it: POST a session, then one
        monolithic PUT. True when bytes were sent."""
        if self.blob_exists(repository, digest):
            return False
        what = f"upload blob {repository}@{digest[:19]}"
        resp = self._request("POST", f"/v2/{repository}/blobs/uploads/", what=what)
        location = resp.headers.get("Location", "")
        if resp.status_code != 202 or not location:
            raise self._unexpected(resp, what)
        if not location.startswith(("http://", "https://")):
            location = self.base_url + "/" + location.lstrip("/")
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(source.stat().st_size)}
        resp = self._request("PUT", location, params={"digest": digest}, headers=headers, data=source, what=what)
        if resp.status_code != 201:
            raise self._unexpected(resp, what)
        return True

    def _request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        headers: Mapping[str, str] | None = None,
        data: bytes | Path | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Response:
        """``data`` may be a file: opened afresh for each attempt and streamed, never read whole."""
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        authenticated = False
        attempt = 0
        problem = ""
        while True:
            request_headers = dict(headers or {})
            if self._authorization:
                request_headers["Authorization"] = self._authorization
            self.request_count += 1
            try:
                with _body(data) as body:
                    resp = self._session.request(
                        method,
                        url,
                        headers=request_headers,
                        data=body,
                        params=params,
                        timeout=(self.retry.connect_timeout, self.retry.read_timeout),
                        allow_redirects=method in ("GET", "HEAD"),
                    )
            except OSError as exc:
                problem = _describe_exception(exc)
                retry_after: float | None = None
            else:
                if resp.status_code == 401:
                    # One (re-)authentication per request: a cached token may lack this scope.
                    if authenticated:
                        raise self._auth_failed()
                    self._authenticate(resp)
                    authenticated = True
                    continue
                if resp.status_code not in RETRY_STATUSES:
                    return resp
                problem = f"HTTP {resp.status_code}"
                retry_after = _retry_after(resp.headers.get("Retry-After", ""))
                resp.close()
                if retry_after is not None and retry_after > self.retry.max_retry_after:
                    raise ToolkitError.failed(
                        f"{self.host}: {what} failed: {problem}, registry asks to retry after {retry_after:.0f}s"
                    )
            attempt += 1
            if attempt >= self.retry.attempts:
                raise ToolkitError.failed(f"{self.host}: {what} failed after {attempt} attempts: {problem}")
            pause = self.retry.delay(attempt - 1, retry_after, self._rng)
            retries = self.retry.attempts - 1
            self.reporter.info(
                f"retrying {what} ({attempt}/{retries}) after {problem.removeprefix('HTTP ')} from {self.host}"
            )
            self._sleep(pause)

    def _authenticate(self, resp: Response) -> None:
        challenge = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
        resp.close()
        if challenge.scheme == "basic":
            if not self.credentials or not self.credentials.password:
                raise self._auth_failed()
            self._authorization = _basic(self.credentials.username, self.credentials.password)
        elif challenge.scheme == "bearer":
            self._authorization = "Bearer " + self._fetch_token(challenge)
        else:
            raise self._auth_failed()

    def _fetch_token(self, challenge: Challenge) -> str:
        realm = challenge.params.get("realm", "")
        creds = self.credentials
        check_token_realm(realm, self.base_url, with_credentials=bool(creds and creds.secrets))
        scopes = set(self._scopes)
        if challenge.params.get("scope"):
            scopes.update(challenge.params["scope"].split(" "))
        query: dict[str, Any] = {"service": challenge.params.get("service", ""), "scope": sorted(scopes)}
        timeout = (self.retry.connect_timeout, self.retry.read_timeout)
        for attempt in range(self.retry.attempts):
            self.request_count += 1
            try:
                if creds and creds.identity_token:
                    form = {**query, "grant_type": "refresh_token", "refresh_token": creds.identity_token}
                    form["client_id"] = "ci-toolkit"
                    form["scope"] = " ".join(sorted(scopes))
                    resp = self._session.post(realm, data=form, timeout=timeout)
                else:
                    auth = (creds.username, creds.password) if creds and creds.password else None
                    resp = self._session.get(realm, params=query, auth=auth, timeout=timeout)
            except OSError as exc:
                problem = _describe_exception(exc)
            else:
                if resp.status_code in (401, 403):
                    raise self._auth_failed()
                if resp.status_code == 200:
                    body = _json(resp.content)
                    if not isinstance(body, dict):
                        raise ToolkitError.failed(
                            f"authentication failed for {self.host}: the token endpoint {realm} did not answer JSON"
                        )
                    token = str(body.get("token") or body.get("access_token") or "")
                    if not token:
                        raise ToolkitError.failed(f"authentication failed for {self.host}: no token in reply")
                    self.reporter.add_secret(token)
                    return token
                if resp.status_code not in RETRY_STATUSES:
                    raise ToolkitError.failed(f"authentication failed for {self.host}: HTTP {resp.status_code}")
                problem = f"HTTP {resp.status_code}"
            if attempt + 1 < self.retry.attempts:
                self._sleep(self.retry.delay(attempt, None, self._rng))
        raise ToolkitError.failed(f"{self.host}: token request failed after {self.retry.attempts} attempts: {problem}")

    def _auth_failed(self) -> ToolkitError:
        how = f"credentials from {self.credentials.source}" if self.credentials else "no credentials"
        return ToolkitError.failed(
            f"authentication failed for {self.host} ({how}); check CI_TOOLKIT_REGISTRY_USER/PASSWORD or docker login"
        )

    def _unexpected(self, resp: Response, what: str) -> ToolkitError:
        detail = ""
        body = _json(resp.content)
        errors = body.get("errors") if isinstance(body, dict) else None
        if isinstance(errors, list) and errors:
            detail = ": " + "; ".join(
                str(e.get("message") or e.get("code")) if isinstance(e, dict) else str(e) for e in errors[:3]
            )
        if resp.status_code == 403:
            return ToolkitError.failed(f"{self.host}: {what}: access denied (HTTP 403){detail}")
        return ToolkitError.failed(f"{self.host}: {what}: HTTP {resp.status_code}{detail}")


def connect(
    host: str, *, settings: Settings, env: Mapping[str, str], reporter: Reporter, retry: RetryPolicy | None = None
) -> RegistryClient:
    """A client for ``host`` with the toolkit's credentials (settings, else Docker's config)
    and its insecure-registry list: what promote, merge and push-by-digest all use."""
    creds = resolve_credentials(host, user=settings.registry_user, password=settings.registry_password, env=env)
    return RegistryClient(
        host,
        credentials=creds,
        insecure=tuple(settings.insecure_registries),
        retry=retry or RetryPolicy(),
        reporter=reporter,
    )


@contextlib.contextmanager
def _body(data: bytes | Path | None) -> Iterator[bytes | BinaryIO | None]:
    if isinstance(data, Path):
        with data.open("rb") as stream:
            yield stream
    else:
        yield data


def _basic(user: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _retry_after(value: str) -> float | None:
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _json(body: bytes) -> Any:
    """A reply's JSON, or None when it is not JSON (an HTML error page from a proxy)."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _describe_exception(exc: Exception) -> str:
    if isinstance(exc, TransportError):
        return exc.reason
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc)
    for marker in ("Connection reset", "Connection refused", "Connection aborted", "RemoteDisconnected"):
        if marker in text:
            return marker.lower()
    return "connection error"
