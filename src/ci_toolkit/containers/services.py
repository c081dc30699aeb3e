"""Service containers: how a ``--service`` value is read, the hostnames a service answers to,
and waiting until it accepts connections.

A service is ``IMAGE[:TAG][:ALIAS]`` or a mapping with GitLab's ``services:`` keywords
(``name``/``image``, ``alias``/``aliases``, ``entrypoint``, ``command``, ``variables``,
``pull_policy``) plus ``wait_for`` (ports to wait for), given inline as YAML/JSON, in a file,
or as an item of a pipeline step's ``services:``.

Alias rules follow the GitLab-style runners (seed 004): everything after ``:`` is stripped
(a registry host's port too), then ``/`` becomes ``__`` for the first alias and ``-`` for
the second: ``tutum/wordpress:latest`` -> ``tutum__wordpress``, ``tutum-wordpress``."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci_toolkit.containers.options import ContainerOptions
from ci_toolkit.core.errors import ToolkitError

_ALIAS = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


@dataclass(frozen=True, kw_only=True)
class ServiceSpec:
    """``entrypoint``/``command`` None: the image's. ``pull_policy`` empty: the run's.
    ``wait_for`` empty: the first exposed TCP port."""

    image: str
    alias: str = ""
    aliases: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    command: tuple[str, ...] | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    pull_policy: str = ""
    wait_for: tuple[int, ...] = ()
    wait: bool = True
    """False: wait for no port, not even the first exposed one (buildrunner's services
    without ``wait_for``)."""
    wait_timeout: float | None = None
    """Seconds to wait for each port; None: the run's service timeout."""
    options: ContainerOptions = field(default_factory=ContainerOptions)
    binds: tuple[str, ...] = ()
    """Resolved ``SRC:DST:MODE`` bind mounts."""
    volumes_from: tuple[str, ...] = ()
    """Names of services started before this one whose volumes it mounts."""


SERVICE_KEYS = ("name", "image", "alias", "aliases", "entrypoint", "command", "variables", "pull_policy", "wait_for")
PULL_POLICIES = ("always", "if-not-present", "never")


def parse_services(value: str, cwd: Path) -> list[ServiceSpec]:
    """One ``--service`` value: ``IMAGE[:TAG][:ALIAS]``, an inline YAML/JSON mapping
    (``{name: postgres:16, alias: db}``), or a ``.yaml``/``.yml``/``.json`` file holding one
    mapping or a list of services."""
    text = value.strip()
    if text.startswith(("{", "[")):
        return service_list(_load_yaml(text, "--service"), "--service")
    path = cwd / text
    if text.endswith((".yaml", ".yml", ".json")) and path.is_file():
        try:
            content = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ToolkitError.bad_input(f"--service {text}: {exc.strerror or exc}") from None
        return service_list(_load_yaml(content, text), text)
    return [parse_service(text)]


def service_list(data: Any, where: str) -> list[ServiceSpec]:
    """A list of services (strings or mappings), or one mapping."""
    items = data if isinstance(data, list) else [data]
    return [service_entry(item, where) for item in items]


def service_entry(item: Any, where: str) -> ServiceSpec:
    """A step's or file's service: a string as for ``--service``, or a mapping of GitLab's
    ``services:`` keywords."""
    if isinstance(item, str):
        return parse_service(item)
    if not isinstance(item, Mapping):
        raise ToolkitError.bad_input(f"{where}: a service is IMAGE[:TAG][:ALIAS] or a mapping, not {item!r}")
    unknown = sorted(set(map(str, item)) - set(SERVICE_KEYS))
    if unknown:
        raise ToolkitError.bad_input(f"{where}: unknown service key {unknown[0]!r}; known: {', '.join(SERVICE_KEYS)}")
    image = str(item.get("name") or item.get("image") or "")
    if not image or ("name" in item and "image" in item):
        raise ToolkitError.bad_input(f"{where}: a service mapping needs exactly one of name and image")
    base = parse_service(image)
    aliases = _aliases(item.get("alias"), item.get("aliases"), where)
    return ServiceSpec(
        image=base.image,
        alias=(aliases or [base.alias])[0] if aliases or base.alias else "",
        aliases=tuple(dict.fromkeys([*([base.alias] if base.alias else []), *aliases])),
        entrypoint=_words(item.get("entrypoint"), f"{where}: entrypoint"),
        command=_words(item.get("command"), f"{where}: command"),
        variables=_variables(item.get("variables"), where),
        pull_policy=_pull_policy(item.get("pull_policy"), where),
        wait_for=_ports(item.get("wait_for"), where),
    )


def _load_yaml(text: str, where: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ToolkitError.bad_input(f"{where}: not YAML/JSON: {str(exc).splitlines()[0]}") from None


def _aliases(alias: Any, aliases: Any, where: str) -> list[str]:
    # GitLab takes several aliases in one string, separated by commas or spaces.
    names = re.split(r"[,\s]+", str(alias)) if alias is not None else []
    if aliases is not None:
        if not isinstance(aliases, list):
            raise ToolkitError.bad_input(f"{where}: aliases must be a list of hostnames")
        names += [str(a) for a in aliases]
    names = [n for n in names if n]
    for name in names:
        if not _ALIAS.match(name):
            raise ToolkitError.bad_input(f"{where}: alias {name!r} is not a valid hostname")
    return names


def _words(value: Any, where: str) -> tuple[str, ...] | None:
    """GitLab's entrypoint/command: a list of words; a plain string is one word (no shell)."""
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(w, (str, int, float)) for w in value):
        return tuple(str(w) for w in value)
    raise ToolkitError.bad_input(f"{where} must be a list of strings")


def _variables(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or any(isinstance(v, (dict, list)) for v in value.values()):
        raise ToolkitError.bad_input(f"{where}: variables must map names to plain values")
    return {str(k): "" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}


def _pull_policy(value: Any, where: str) -> str:
    # GitLab allows a list (policies tried in order); the first is the one that decides here.
    first = value[0] if isinstance(value, list) and value else value
    if first is None:
        return ""
    if first not in PULL_POLICIES:
        raise ToolkitError.bad_input(f"{where}: pull_policy must be one of {', '.join(PULL_POLICIES)}")
    return str(first)


def _ports(value: Any, where: str) -> tuple[int, ...]:
    items = value if isinstance(value, list) else [] if value is None else [value]
    ports = []
    for item in items:
        port = item.get("port") if isinstance(item, Mapping) else item
        if isinstance(port, str) and port.isdigit():
            port = int(port)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ToolkitError.bad_input(f"{where}: wait_for takes TCP port numbers, not {item!r}")
        ports.append(port)
    return tuple(ports)


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
    own = spec.aliases or ((spec.alias,) if spec.alias else ())
    return list(dict.fromkeys([*image_aliases(spec.image), *own]))


def first_tcp_port(exposed: Mapping[str, Any] | None) -> int | None:
    """The lowest exposed TCP port (``"8080/tcp"`` keys of the container config), or None."""
    ports = []
    for key in exposed or {}:
        number, _, proto = key.partition("/")
        if (proto or "tcp") == "tcp" and number.isascii() and number.isdigit():
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
