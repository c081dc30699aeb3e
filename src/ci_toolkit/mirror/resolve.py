"""Which mirror a pull goes through: the mirrors configured for a registry, a quick probe of
each (``GET /v2/``, kept for the run), the fallback to the upstream with one warning (or an
error when a mirror is required), and Docker Hub's rate limit turned into a clear message.

Public entries: ``effective_docker_registry`` (the ``DOCKER_REGISTRY`` build argument),
``pull_reference`` (a reference to pull, rewritten to the mirror that answers),
``rate_limit_error`` / ``explain_rate_limit`` (429 TOOMANYREQUESTS), ``check_reference``."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.refs import (
    DOCKER_HUB,
    MirrorHost,
    Reference,
    parse_mirror,
    parse_reference,
    registry_base_url,
    rewrite_to_mirror,
)
from ci_toolkit.core.report import Reporter
from ci_toolkit.core.retry import settings_policy
from ci_toolkit.core.settings import Settings
from ci_toolkit.core.units import parse_duration

_RATE_LIMIT_RE = re.compile(r"toomanyrequests|429 too many requests|pull rate limit", re.IGNORECASE)
_HUB_ALIASES = {DOCKER_HUB, "index.docker.io", "registry-1.docker.io"}


@dataclass(frozen=True)
class Probe:
    """A mirror probe's answer."""

    mirror: str
    ok: bool
    status: int | None
    detail: str

    @property
    def rate_limited(self) -> bool:
        return self.status == 429


# One probe per mirror per run: the first pull pays for it, later pulls reuse the answer.
_probes: dict[str, Probe] = {}
_warned: set[str] = set()


def reset() -> None:
    """Forget probes and warnings (a new run in the same process, e.g. tests)."""
    _probes.clear()
    _warned.clear()


def _is_hub(host: str, settings: Settings) -> bool:
    return host in _HUB_ALIASES or host == settings.hub_registry


def mirrors_for(registry: str, settings: Settings) -> list[MirrorHost]:
    """The mirrors to try for ``registry``, in order. For Docker Hub, a ``docker-registry``
    other than the hub itself is the first mirror, then ``mirrors: {docker.io: [...]}``."""
    entries: list[str] = []
    if registry == DOCKER_HUB and not _is_hub(settings.docker_registry, settings):
        entries.append(settings.docker_registry)
    entries.extend(settings.mirrors.get(registry, []))
    if registry == DOCKER_HUB:
        entries.extend(settings.mirrors.get("index.docker.io", []))
    seen: dict[str, MirrorHost] = {}
    for entry in entries:
        mirror = parse_mirror(entry)
        seen.setdefault(mirror.address, mirror)
    return list(seen.values())


def upstream_for(registry: str, settings: Settings) -> str:
    """Where pulls for ``registry`` go without a mirror: Docker Hub's stand-in when set."""
    return settings.hub_registry if registry == DOCKER_HUB else registry


def mirror_url(mirror: MirrorHost, settings: Settings) -> str:
    if mirror.scheme:
        return f"{mirror.scheme}://{mirror.host}"
    return registry_base_url(mirror.host, settings.insecure_registries)


def probe(mirror: MirrorHost, settings: Settings) -> Probe:
    """``GET /v2/`` with a short timeout. 200 and 401 (auth required) mean the mirror is up."""
    key = mirror.address
    if key in _probes:
        return _probes[key]
    timeout = parse_duration(settings.mirror_timeout, "mirror-timeout", positive=True)
    url = mirror_url(mirror, settings) + "/v2/"
    insecure = mirror.host in settings.insecure_registries
    policy = settings_policy(settings)
    for attempt in range(policy.attempts):
        result, transient = _probe_once(key, url, timeout, insecure)
        # A 5xx or a reset is worth another look; a timeout already spent mirror-timeout.
        if not transient or attempt + 1 >= policy.attempts:
            break
        time.sleep(min(policy.delay(attempt, None, random.Random()), timeout))
    _probes[key] = result
    return result


def _probe_once(key: str, url: str, timeout: float, insecure: bool) -> tuple[Probe, bool]:
    import requests

    try:
        resp = requests.get(url, timeout=(timeout, timeout), verify=not insecure, allow_redirects=False)
    except requests.Timeout:
        return Probe(key, False, None, f"no answer from {url} within {timeout:g}s"), False
    except requests.RequestException as exc:
        reason = _reason(exc)
        reset = any(m in str(exc) for m in ("reset", "aborted", "RemoteDisconnected"))
        return Probe(key, False, None, f"{url} unreachable ({reason})"), reset
    detail = _error_text(resp.text) if resp.status_code == 429 else f"HTTP {resp.status_code} from {url}"
    return Probe(key, resp.status_code in (200, 401), resp.status_code, detail), resp.status_code in (
        500,
        502,
        503,
        504,
    )


def _reason(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "certificate verify failed", "timed out"):
        if marker.lower() in text.lower():
            return marker.lower()
    return type(exc).__name__


def _error_text(body: str) -> str:
    """The ``errors[0].code: message`` of a registry error body, else a short excerpt."""
    import json

    try:
        errors = json.loads(body).get("errors") or []
        first = errors[0]
        return f"{first.get('code', '')}: {first.get('message', '')}".strip(": ")
    except (ValueError, AttributeError, IndexError, TypeError, KeyError):
        return " ".join(body.split())[:200]


def rate_limit_error(registry: str, detail: str = "") -> ToolkitError:
    """One line: what happened, where, and what to do."""
    what = f" ({detail})" if detail else ""
    return ToolkitError.failed(
        f"pull rate limit reached at {registry}: HTTP 429 TOOMANYREQUESTS{what}; Docker Hub allows anonymous "
        "users 100 pulls per 6 hours: configure a pull-through mirror (setting docker-registry: MIRROR_HOST, or "
        "mirrors: {docker.io: [MIRROR_HOST]}) or log in (docker login, or registry-user/registry-password)"
    )


def explain_rate_limit(exc: ToolkitError, registry: str = "") -> ToolkitError:
    """A failure whose text (buildx, dockerd, a registry answer) shows a 429 becomes the
    rate-limit message; anything else is returned unchanged. The registry is the one given,
    else the one named by a ``/v2/`` URL in the text, else docker.io."""
    if not _RATE_LIMIT_RE.search(exc.message):
        return exc
    if not registry:
        url = re.search(r"https?://([^/\s\"']+)/v2/", exc.message)
        registry = url.group(1) if url else DOCKER_HUB
        registry = "docker.io" if registry in _HUB_ALIASES else registry
    match = re.search(r"toomanyrequests:?\s*([^\n]*)", exc.message, re.IGNORECASE)
    detail = match.group(1).strip()[:160] if match else ""
    return rate_limit_error(registry, detail)


def select_mirror(registry: str, settings: Settings, reporter: Reporter) -> MirrorHost | None:
    """The first mirror of ``registry`` that answers; None means "use the upstream"
    (after one warning per registry). A rate-limited mirror is an error, not a fallback:
    its upstream is the registry that limits us."""
    mirrors = mirrors_for(registry, settings)
    if not mirrors:
        return None
    failures: list[str] = []
    for mirror in mirrors:
        result = probe(mirror, settings)
        if result.rate_limited:
            raise rate_limit_error(mirror.address, result.detail)
        if result.ok:
            return mirror
        failures.append(result.detail)
    names = ", ".join(m.address for m in mirrors)
    upstream = upstream_for(registry, settings)
    if settings.mirror_required:
        raise ToolkitError.failed(
            f"mirror {names} for {registry} is not available ({'; '.join(failures)}) and mirror-required is set: "
            f"start the mirror, fix the mirrors/docker-registry setting, or drop --mirror-required to pull from "
            f"{upstream}"
        )
    if registry not in _warned:
        _warned.add(registry)
        reporter.warning(f"mirror {names} for {registry} is not available ({'; '.join(failures)}): using {upstream}")
    return None


def effective_docker_registry(settings: Settings, reporter: Reporter) -> str:
    """The value of ``--build-arg DOCKER_REGISTRY``: the Docker Hub mirror when it answers,
    else the upstream (``hub-registry``, normally docker.io)."""
    mirror = select_mirror(DOCKER_HUB, settings, reporter)
    return mirror.address if mirror else settings.hub_registry


def _route(ref: Reference, settings: Settings, reporter: Reporter) -> Reference:
    mirror = select_mirror(ref.domain, settings, reporter)
    if mirror is not None:
        return rewrite_to_mirror(ref, mirror)
    upstream = upstream_for(ref.domain, settings)
    if upstream != ref.domain and upstream not in _HUB_ALIASES:
        return rewrite_to_mirror(ref, parse_mirror(upstream))
    return ref


def pull_reference(text: str, settings: Settings, reporter: Reporter) -> str:
    """The reference to pull for ``text``: ``busybox`` -> ``127.0.0.1:5002/library/busybox:latest``
    when a docker.io mirror is configured and answers; the upstream reference otherwise.
    Registries without configured mirrors are left as they are (normalised)."""
    ref = parse_reference(text)
    if ref.domain == settings.hub_registry and ref.domain != DOCKER_HUB:
        ref = Reference(DOCKER_HUB, ref.path, ref.tag, ref.digest)
    return str(_route(ref, settings, reporter))


def rewrite_static(text: str, settings: Settings) -> str:
    """The mirrored reference without probing: the first configured mirror, else unchanged."""
    ref = parse_reference(text)
    mirrors = mirrors_for(ref.domain, settings)
    return str(rewrite_to_mirror(ref, mirrors[0]) if mirrors else ref)


@dataclass(frozen=True)
class Check:
    """Where one image reference was pulled from."""

    reference: str
    pulled_from: str
    status: int | None
    detail: str


def check_reference(text: str, settings: Settings, reporter: Reporter) -> Check:
    """Probe the route a pull of ``text`` would take and HEAD its manifest there, so a rate
    limit or a missing image shows before a build needs it."""
    import requests

    target = parse_reference(pull_reference(text, settings, reporter))
    base = registry_base_url(target.domain, settings.insecure_registries)
    url = f"{base}/v2/{target.path}/manifests/{target.manifest_ref}"
    timeout = parse_duration(settings.mirror_timeout, "mirror-timeout", positive=True)
    try:
        resp = requests.head(url, timeout=(timeout, 2 * timeout), headers=_ACCEPT)
    except requests.RequestException as exc:
        raise ToolkitError.failed(f"cannot reach {target.domain} for {target} ({_reason(exc)})") from exc
    if resp.status_code == 429:
        detail = resp.headers.get("docker-ratelimit-source", "") or _limit_headers(resp.headers)
        raise rate_limit_error(target.domain, detail)
    return Check(str(target), target.domain, resp.status_code, _limit_headers(resp.headers))


_ACCEPT = {
    "Accept": ", ".join(
        (
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
    )
}


def _limit_headers(headers: Mapping[str, str]) -> str:
    """Docker Hub reports the quota in ``ratelimit-limit`` / ``ratelimit-remaining``."""
    limit, remaining = headers.get("ratelimit-limit", ""), headers.get("ratelimit-remaining", "")
    return f"limit {limit}, remaining {remaining}" if limit or remaining else ""
