"""Registry credentials and auth challenges.

Credentials come from the toolkit's settings (``CI_TOOLKIT_REGISTRY_USER`` /
``CI_TOOLKIT_REGISTRY_PASSWORD``) first, else from Docker's config.json, read through the
Docker SDK so ``auths``, ``credHelpers`` and ``credsStore`` behave as they do for ``docker``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ci_toolkit.core.errors import ToolkitError

DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


@dataclass(frozen=True, kw_only=True)
class Credentials:
    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)
    source: str = ""

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.password, self.identity_token) if s)


@dataclass(frozen=True)
class Challenge:
    scheme: str
    params: Mapping[str, str]


_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def parse_challenge(header: str) -> Challenge:
    """``Bearer realm="https://auth",service="reg",scope="repository:a:pull"`` -> Challenge."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3) for m in _PARAM.finditer(rest)}
    return Challenge(scheme.lower(), params)


def check_token_realm(realm: str, registry_url: str, *, with_credentials: bool) -> None:
    """Credentials go to a token realm only over https or on the registry's own host: the
    realm is whatever the registry's 401 names, and a plain-http realm elsewhere would carry
    the password in clear to a host we were never told to trust."""
    from urllib.parse import urlsplit

    parts = urlsplit(realm)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ToolkitError.failed(f"authentication failed: bad token realm {realm!r}")
    if not with_credentials or parts.scheme == "https":
        return
    own = urlsplit(registry_url).hostname
    if parts.hostname != own:
        raise ToolkitError.failed(
            f"refusing to send credentials for {own} to token realm {realm}: it is plain http on another host "
            "(a realm must use https or be on the registry's own host)"
        )


def docker_config_path(env: Mapping[str, str]) -> Path | None:
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"]) / "config.json"
    if env.get("HOME"):
        return Path(env["HOME"]) / ".docker" / "config.json"
    return None


def resolve_credentials(
    host: str, *, user: str = "", password: str = "", env: Mapping[str, str] = {}
) -> Credentials | None:
    """Explicit user/password win; else Docker's config.json for ``host``; else anonymous (None)."""
    if user or password:
        if not (user and password):
            raise ToolkitError.bad_input("set both registry-user and registry-password, or neither")
        return Credentials(username=user, password=password, source="settings")
    path = docker_config_path(env)
    if path is None or not path.is_file():
        return None
    return _from_docker_config(host, path, env)


def credential_source(host: str, *, user: str = "", env: Mapping[str, str] = {}) -> str:
    """Where credentials for ``host`` come from, for an error message: never the secret."""
    import json

    if user:
        return "the settings registry-user/registry-password"
    path = docker_config_path(env)
    if path is None or not path.is_file():
        return "nowhere (no Docker config.json; anonymous)"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"{path} (unreadable)"
    if not isinstance(data, dict):
        return f"{path} (not a JSON object)"
    helpers: dict[str, object] = data["credHelpers"] if isinstance(data.get("credHelpers"), dict) else {}
    if host in helpers:
        return f"the credential helper docker-credential-{helpers[host]} ({path})"
    if data.get("credsStore"):
        return f"the credential store docker-credential-{data['credsStore']} ({path})"
    auths: dict[str, object] = data["auths"] if isinstance(data.get("auths"), dict) else {}
    if host in auths:
        return f"the auths entry for {host} in {path}"
    return f"nowhere (no entry for {host} in {path}; anonymous)"


def _from_docker_config(host: str, path: Path, env: Mapping[str, str]) -> Credentials | None:
    from docker import auth, errors

    try:
        config = auth.load_config(config_path=str(path), credstore_env=dict(env))
        # The SDK keys Docker Hub as None (its index URL); every other registry by host name.
        entry = config.resolve_authconfig(None if host in DOCKER_HUB_HOSTS else host)
    except errors.DockerException as exc:
        raise ToolkitError.failed(f"cannot read credentials for {host} from {path}: {exc}") from exc
    except (OSError, ValueError) as exc:
        raise ToolkitError.bad_input(f"cannot read {path}: {exc}") from exc
    if not entry:
        return None
    username = str(entry.get("Username") or entry.get("username") or "")
    password = str(entry.get("Password") or entry.get("password") or "")
    token = str(entry.get("IdentityToken") or entry.get("identitytoken") or "")
    if not (password or token):
        return None
    return Credentials(username=username, password=password, identity_token=token, source=str(path))
