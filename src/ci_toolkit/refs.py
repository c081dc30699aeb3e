"""Image references and registry hosts."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


def is_loopback_host(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") is False else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def registry_base_url(host: str, insecure: Iterable[str] = ()) -> str:
    """``http://`` for loopback and registries marked insecure, else ``https://``.
    A value that already carries a scheme is kept as given."""
    if host.startswith(("http://", "https://")):
        return host.rstrip("/")
    scheme = "http" if is_loopback_host(host) or host in set(insecure) else "https"
    return f"{scheme}://{host.rstrip('/')}"
