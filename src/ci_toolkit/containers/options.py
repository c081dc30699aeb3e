"""Per-container options shared by the run container and services: user, working directory,
hostname, DNS, extra hosts, resource limits, platform, and the ports a run publishes.

Kept apart from ``run`` so both container kinds turn them into Docker API arguments the same
way. ``extra_hosts`` values may name a service: ``resolve`` maps such a name to its address.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ci_toolkit.core.errors import ToolkitError


@dataclass(frozen=True, kw_only=True)
class ContainerOptions:
    user: str = ""
    working_dir: str = ""
    hostname: str = ""
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    extra_hosts: Mapping[str, str] = field(default_factory=dict)
    mem_limit: str | int = ""
    cpu_shares: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    platform: str = ""


def create_kwargs(options: ContainerOptions) -> dict[str, Any]:
    """Arguments of ``APIClient.create_container`` (besides image, command, name, ...)."""
    found: dict[str, Any] = {}
    if options.user:
        found["user"] = options.user
    if options.hostname:
        found["hostname"] = options.hostname
    if options.working_dir:
        found["working_dir"] = options.working_dir
    if options.platform:
        found["platform"] = options.platform
    return found


def host_config_kwargs(options: ContainerOptions, resolve: Callable[[str], str]) -> dict[str, Any]:
    """Arguments of ``APIClient.create_host_config``; ``resolve`` turns a service name in
    ``extra_hosts`` into its address (an IP address is returned as it is)."""
    found: dict[str, Any] = {}
    if options.dns:
        found["dns"] = list(options.dns)
    if options.dns_search:
        found["dns_search"] = list(options.dns_search)
    if options.extra_hosts:
        found["extra_hosts"] = {host: resolve(target) for host, target in options.extra_hosts.items()}
    if options.mem_limit not in ("", 0):
        found["mem_limit"] = options.mem_limit
    for name in ("cpu_shares", "cpu_period", "cpu_quota"):
        if getattr(options, name):
            found[name] = getattr(options, name)
    return found


def port_bindings(ports: Mapping[str, str | int | None]) -> tuple[list[Any], dict[Any, Any]]:
    """``{"8080": 8081, "53/udp": None}`` -> (exposed ports, bindings); None: any free port."""
    exposed: list[Any] = []
    bindings: dict[Any, Any] = {}
    for spec, host in ports.items():
        number, _, proto = str(spec).partition("/")
        if not number.isdigit() or proto not in ("", "tcp", "udp"):
            raise ToolkitError.bad_input(f"ports: {spec!r} is not PORT[/tcp|/udp]")
        key: Any = (int(number), proto) if proto == "udp" else int(number)
        exposed.append(key)
        if host not in (None, "") and not str(host).isdigit():
            raise ToolkitError.bad_input(f"ports: host port {host!r} for {spec} is not a number")
        bindings[f"{number}/{proto}" if proto else int(number)] = None if host in (None, "") else int(str(host))
    return exposed, bindings
