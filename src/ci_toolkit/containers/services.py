"""Service containers: how a ``--service`` value is read, the hostnames a service answers to,
and waiting until it accepts connections.

Alias rules follow the GitLab-style runners (seed 004): everything after ``:`` is stripped
(a registry host's port too), then ``/`` becomes ``__`` for the first alias and ``-`` for
the second: ``tutum/wordpress:latest`` -> ``tutum__wordpress``, ``tutum-wordpress``."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ci_toolkit.core.errors import ToolkitError

_ALIAS = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


@dataclass(frozen=True, kw_only=True)
class ServiceSpec:
    image: str
    alias: str = ""


def parse_service(text: str) -> ServiceSpec:
    """``IMAGE[:TAG][:ALIAS]``. A single ``:`` after the image name is a tag, as everywhere in
    Docker (``postgres:9.3`` must keep working), so an alias needs the tag spelled out
    (``postgres:9.3:db``) or left empty (``postgres::db``)."""
    text = text.strip()
    slash = text.rfind("/")
    head, last = text[: slash + 1], text[slash + 1 :]
    alias = ""
    if "@" in last:
        name, _, digest = last.partition("@")
        algo, _, rest = digest.partition(":")
        hexpart, sep, alias = rest.partition(":")
        last = f"{name}@{algo}:{hexpart}" if sep else last
    elif last.count(":") == 2:
        name, tag, alias = last.split(":")
        last = f"{name}:{tag}" if tag else name
    image = head + last
    if not last or last.startswith((":", "@")) or last.split("@", 1)[0].count(":") > 1:
        raise ToolkitError.bad_input(f"--service: {text!r} is not IMAGE[:TAG][:ALIAS]")
    if alias and not _ALIAS.match(alias):
        raise ToolkitError.bad_input(f"--service: alias {alias!r} is not a valid hostname")
    return ServiceSpec(image=image, alias=alias)


def image_aliases(image: str) -> list[str]:
    """The two hostnames derived from the image name (one when they coincide)."""
    name = image.split("@", 1)[0]
    parts = name.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts[0] = parts[0].split(":", 1)[0]
    parts[-1] = parts[-1].split(":", 1)[0]
    path = "/".join(parts)
    aliases = [path.replace("/", "__"), path.replace("/", "-")]
    return list(dict.fromkeys(a for a in aliases if a))


def service_aliases(spec: ServiceSpec) -> list[str]:
    return list(dict.fromkeys([*image_aliases(spec.image), *([spec.alias] if spec.alias else [])]))


def first_tcp_port(exposed: Mapping[str, Any] | None) -> int | None:
    """The lowest exposed TCP port (``"8080/tcp"`` keys of the container config), or None."""
    ports = []
    for key in exposed or {}:
        number, _, proto = key.partition("/")
        if (proto or "tcp") == "tcp" and number.isdigit():
            ports.append(int(number))
    return min(ports) if ports else None


def wait_for_port(
    host: str,
    port: int,
    *,
    timeout: float,
    still_running: Callable[[], bool],
    name: str,
    interval: float = 0.2,
) -> None:
    """Poll until ``host:port`` accepts a TCP connection. Stops early when the service exits,
    because waiting out the timeout for a dead process only hides the real error."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=min(1.0, max(timeout, 0.1))):
                return
        except OSError:
            pass
        if not still_running():
            raise ToolkitError.failed(f"service {name} exited before opening port {port}/tcp")
        if time.monotonic() >= deadline:
            raise ToolkitError.failed(
                f"service {name} did not open port {port}/tcp within {timeout:g}s "
                "(raise service-timeout or check the service's command)"
            )
        time.sleep(interval)
