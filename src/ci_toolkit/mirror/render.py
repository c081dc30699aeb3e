"""Render the mirror settings as the three files that configure pulls: BuildKit's
buildkitd.toml (docker-container / kubernetes builders ignore dockerd's mirrors), dockerd's
daemon.json (merged into an existing one), and containerd's ``certs.d/<registry>/hosts.toml``.

Public entry: ``render(fmt, settings, registry=..., merge_text=...)``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.refs import DOCKER_HUB, MirrorHost, is_loopback_host, is_registry_host
from ci_toolkit.core.settings import Settings
from ci_toolkit.mirror.resolve import mirror_url, mirrors_for

FORMATS = ("buildkitd", "daemon-json", "containerd-hosts")
HUB_ENDPOINT = "https://registry-1.docker.io"


@dataclass(frozen=True)
class Rendered:
    text: str
    notes: list[str] = field(default_factory=list)


def render(fmt: str, settings: Settings, *, registry: str = DOCKER_HUB, merge_text: str | None = None) -> Rendered:
    if fmt == "buildkitd":
        return Rendered(buildkitd_toml(settings))
    if fmt == "daemon-json":
        return daemon_json(settings, merge_text)
    if fmt == "containerd-hosts":
        return Rendered(hosts_toml(settings, registry))
    raise ToolkitError.bad_input(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")


def _q(value: str) -> str:
    """A TOML basic string (JSON's escapes are a subset TOML accepts)."""
    return json.dumps(value, ensure_ascii=False)


def _qlist(values: Iterable[str]) -> str:
    return "[" + ", ".join(_q(v) for v in values) + "]"


def _keypairs(host: str, settings: Settings) -> list[tuple[str, str]]:
    pairs = []
    for item in settings.registry_keypairs.get(host, []):
        cert, sep, key = item.partition(":")
        if not sep or not cert or not key:
            raise ToolkitError.bad_input(f"registry-keypairs for {host}: expected CERT_FILE:KEY_FILE, got {item!r}")
        pairs.append((cert, key))
    return pairs


def _plain_http(mirror: MirrorHost, settings: Settings) -> bool:
    return mirror_url(mirror, settings).startswith("http://")


def _mirror_table(settings: Settings) -> dict[str, list[MirrorHost]]:
    registries = {DOCKER_HUB: None, **{r: None for r in settings.mirrors}}
    table = {r: mirrors_for(r, settings) for r in registries if r != "index.docker.io"}
    return {r: m for r, m in table.items() if m}


def buildkitd_toml(settings: Settings) -> str:
    """``[registry."<host>"]`` per mirrored registry and per host that needs http, insecure,
    ca or keypairs; ``[worker.oci] max-parallelism`` when set."""
    mirrors = _mirror_table(settings)
    hosts: dict[str, dict[str, Any]] = {}
    for registry, entries in mirrors.items():
        hosts.setdefault(registry, {})["mirrors"] = [m.address for m in entries]
        for m in entries:
            if _plain_http(m, settings):
                hosts.setdefault(m.host, {})["http"] = True
            if m.host in settings.insecure_registries or is_loopback_host(m.host):
                hosts.setdefault(m.host, {})["insecure"] = True
    for host in settings.insecure_registries:
        entry = hosts.setdefault(host, {})
        entry["insecure"] = True
        if is_loopback_host(host):
            entry["http"] = True
    for host in {*settings.registry_ca, *settings.registry_keypairs}:
        hosts.setdefault(host, {})
    lines = ["# Rendered by ci-toolkit mirror render --format buildkitd", ""]
    for host in sorted(hosts, key=lambda h: (h != DOCKER_HUB, h)):
        entry = hosts[host]
        lines.append(f"[registry.{_q(host)}]")
        if "mirrors" in entry:
            lines.append(f"  mirrors = {_qlist(entry['mirrors'])}")
        for key in ("http", "insecure"):
            if entry.get(key):
                lines.append(f"  {key} = true")
        if settings.registry_ca.get(host):
            lines.append(f"  ca = {_qlist(settings.registry_ca[host])}")
        for cert, key in _keypairs(host, settings):
            lines += [f"  [[registry.{_q(host)}.keypair]]", f"    key = {_q(key)}", f"    cert = {_q(cert)}"]
        lines.append("")
    if settings.buildkit_max_parallelism > 0:
        lines += ["[worker.oci]", f"  max-parallelism = {settings.buildkit_max_parallelism}", ""]
    return "\n".join(lines)


def daemon_json(settings: Settings, merge_text: str | None = None) -> Rendered:
    """dockerd takes Docker Hub mirrors only, as URLs without a path: a path-prefixed mirror
    cannot be expressed there and is left out with a note. ``merge_text`` (an existing
    daemon.json) keeps every key and every value we do not add: our mirrors go first in
    registry-mirrors, the file's own stay after them; insecure-registries is extended."""
    notes: list[str] = []
    base = _merge_base(merge_text)
    urls: list[str] = []
    for m in mirrors_for(DOCKER_HUB, settings):
        if m.prefix:
            notes.append(f"dockerd cannot use mirror {m.address} (a path prefix); left out of registry-mirrors")
            continue
        urls.append(mirror_url(m, settings))
    others = sorted(r for r in _mirror_table(settings) if r != DOCKER_HUB)
    if others:
        notes.append(f"dockerd mirrors Docker Hub only; mirrors for {', '.join(others)} need buildkitd.toml")
    merged = {**base, "registry-mirrors": [*urls, *(u for u in base.get("registry-mirrors", []) if u not in urls)]}
    insecure = list(base.get("insecure-registries", []))
    insecure += [host for host in settings.insecure_registries if host not in insecure]
    if insecure:
        merged["insecure-registries"] = insecure
    return Rendered(json.dumps(merged, indent=2) + "\n", notes)


_MERGED_LISTS = ("registry-mirrors", "insecure-registries")


def _merge_base(merge_text: str | None) -> dict[str, Any]:
    """The existing daemon.json to merge into; the keys we extend must be lists of strings,
    or we would lose or mangle what is there (a string would split into characters)."""
    if merge_text is None or not merge_text.strip():
        return {}
    try:
        loaded = json.loads(merge_text)
    except RecursionError as exc:
        raise ToolkitError.bad_input("--merge: not valid JSON: nested too deeply") from exc
    except ValueError as exc:
        raise ToolkitError.bad_input(f"--merge: not valid JSON: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ToolkitError.bad_input("--merge: daemon.json must hold a JSON object")
    for key in _MERGED_LISTS:
        value = loaded.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            got = type(value).__name__ if not isinstance(value, list) else "a list with a non-string"
            raise ToolkitError.bad_input(f"--merge: {key!r} must be a list of strings, got {got}; fix the file")
    return loaded


def hosts_toml(settings: Settings, registry: str = DOCKER_HUB) -> str:
    """containerd's ``/etc/containerd/certs.d/<registry>/hosts.toml``: mirrors first, then the
    registry itself as ``server``. A path prefix becomes ``/v2/<prefix>`` with override_path."""
    if registry != DOCKER_HUB and ("/" in registry or not is_registry_host(registry)):
        raise ToolkitError.bad_input(f"--registry {registry!r} is not a registry HOST[:PORT]")
    server = HUB_ENDPOINT if registry == DOCKER_HUB else f"https://{registry}"
    lines = [
        f"# Rendered by ci-toolkit for /etc/containerd/certs.d/{registry}/hosts.toml",
        f"server = {_q(server)}",
        "",
    ]
    for m in mirrors_for(registry, settings):
        url = mirror_url(m, settings)
        if m.prefix:
            url += f"/v2/{m.prefix}"
        lines.append(f"[host.{_q(url)}]")
        lines.append('  capabilities = ["pull", "resolve"]')
        if m.prefix:
            lines.append("  override_path = true")
        if m.host in settings.insecure_registries:
            lines.append("  skip_verify = true")
        if settings.registry_ca.get(m.host):
            lines.append(f"  ca = {_qlist(settings.registry_ca[m.host])}")
        pairs = _keypairs(m.host, settings)
        if pairs:
            lines.append("  client = [" + ", ".join(f"[{_q(c)}, {_q(k)}]" for c, k in pairs) + "]")
        lines.append("")
    return "\n".join(lines)


def mirror_summary(settings: Settings) -> Mapping[str, list[str]]:
    return {r: [m.address for m in ms] for r, ms in _mirror_table(settings).items()}
