"""What a registry's refusal in buildx's output means for the user: a 401/403 names the
credentials that were used (where they came from, never the secret) and what to check; a
base image that is not found names the reference and the mirror it was asked through."""

from __future__ import annotations

import re
from collections.abc import Mapping

from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.refs import DOCKER_HUB
from ci_toolkit.core.settings import Settings

_AUTH = re.compile(
    r"\b(401 Unauthorized|403 Forbidden|unauthorized|denied|insufficient_scope|authentication required)\b",
    re.IGNORECASE,
)
_HOST = re.compile(r"https?://([^/\s\"']+)|(?:push(?:ing)?|to|for) ([a-z0-9.-]+(?::\d+)?)/", re.IGNORECASE)
_BASE_NOT_FOUND = re.compile(r"failed to resolve source metadata for ([^\s:]+(?::\d+)?/[^\s:@]+(?::[\w.-]+)?)")


def explain(text: str, *, settings: Settings, env: Mapping[str, str], pushing: bool) -> ToolkitError | None:
    """A clear error for an authentication or not-found refusal in ``text``, else None."""
    base = _BASE_NOT_FOUND.search(text)
    if base and "not found" in text:
        return _base_not_found(base.group(1), settings)
    auth = _AUTH.search(text)
    if auth:
        match = _HOST.search(text)
        host = next((g for g in match.groups() if g), "") if match else ""
        return _refused(host, auth.group(1), settings, env, pushing)
    return None


def _refused(host: str, answer: str, settings: Settings, env: Mapping[str, str], pushing: bool) -> ToolkitError:
    from ci_toolkit.registry.auth import credential_source

    source = credential_source(host, user=settings.registry_user, env=env)
    action = "push to" if pushing else "pull from"
    return ToolkitError.failed(
        f"{action} {host or 'the registry'} refused ({answer}): credentials from {source}; check that they are "
        f"valid and allowed to {action.split()[0]} there (docker login {host or 'REGISTRY'})"
    )


def _base_not_found(ref: str, settings: Settings) -> ToolkitError:
    from ci_toolkit.mirror.resolve import mirrors_for

    host = ref.split("/", 1)[0]
    mirrors = {m.address.split("/", 1)[0] for m in mirrors_for(DOCKER_HUB, settings)}
    via = f" (through the mirror {host} for {DOCKER_HUB})" if host in mirrors else f" (at {host})"
    return ToolkitError.failed(
        f"base image {ref} not found{via}: check the FROM line, the tag, and that the mirror has the image"
    )
