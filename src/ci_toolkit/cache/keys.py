"""Cache keys: which key a build uses, and the directory name a key maps to.

A key is any short text (a container name, ``repo|target|platforms``); its directory name is
the key itself when that is already a plain name, else a sanitised prefix plus ``~`` and a
hash of the whole key. ``~`` never appears in a plain name, so two different keys never share
a directory.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ci_toolkit.core.errors import ToolkitError

MAX_KEY_LENGTH = 1024
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_RESERVED = frozenset({"current", "lock", "key"})


def validate_key(key: str, *, source: str = "cache key") -> str:
    """A key given by the user: refused when it looks like a path escape or is unusable."""
    if not key:
        raise ToolkitError.bad_input(f"{source} is empty")
    if "\0" in key or any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise ToolkitError.bad_input(f"{source} contains a control character")
    if len(key) > MAX_KEY_LENGTH:
        raise ToolkitError.bad_input(f"{source} is {len(key)} characters long; at most {MAX_KEY_LENGTH}")
    if key.startswith(("/", "~")) or re.match(r"[A-Za-z]:[\\/]", key):
        raise ToolkitError.bad_input(f"{source} {key!r} is an absolute path; give a name, not a path")
    if any(part in (".", "..") for part in re.split(r"[\\/]", key)):
        raise ToolkitError.bad_input(f"{source} {key!r} contains '.' or '..' path segments")
    return key


def key_dirname(key: str) -> str:
    """The directory name under the cache root for ``key``: safe and collision-free."""
    if _PLAIN.fullmatch(key) and key not in _RESERVED and not key.startswith(("gen-", "tmp-", "del-")):
        return key
    import hashlib  # lazily: only long or unsafe keys need it, and every build imports keys

    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    prefix = _UNSAFE.sub("-", key).strip("-.")[:64] or "key"
    return f"{prefix}~{digest}"


def derive_key(
    *,
    explicit: str,
    env: Mapping[str, str],
    tags: Sequence[str],
    target: str,
    platforms: Sequence[str],
    context_name: str,
) -> str:
    """``--cache-key``, else ``CONTAINER_NAME``, else the first tag's repository + target +
    sorted platforms (else the context directory's name)."""
    if explicit:
        return validate_key(explicit)
    container = env.get("CONTAINER_NAME", "")
    if container:
        return validate_key(container, source="CONTAINER_NAME")
    base = repository_of(tags[0]) if tags else f"context-{context_name or 'build'}"
    parts = [base]
    if target:
        parts.append(target)
    if platforms:
        parts.append(",".join(sorted(platforms)))
    return "|".join(parts)


def repository_of(ref: str) -> str:
    """``host:5000/repo:tag@sha256:...`` -> ``host:5000/repo``."""
    name = ref.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name = name[:colon]
    return name
