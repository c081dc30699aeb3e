"""Checks that the machine can do what the toolkit needs: engine, buildx, containerd image
store, emulated platforms and every configured registry."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ci_toolkit.core import proc
from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.refs import MirrorHost, parse_mirror
from ci_toolkit.core.report import Reporter
from ci_toolkit.core.settings import Settings
from ci_toolkit.mirror.resolve import probe

MIN_ENGINE_MAJOR = 25
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
EMULATED = {"linux/arm64": "qemu-aarch64"}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    required: bool
    fix: str = ""


def run_checks(
    settings: Settings, reporter: Reporter, *, builder: str = "", platforms: tuple[str, ...] = ()
) -> list[Check]:
    """``platforms``: emulation for these is required (default: linux/arm64, advisory);
    ``builder``: that buildx builder must be reachable."""
    checks = _engine_checks()
    engine_ok = checks[0].ok
    checks.append(_buildx_check(reporter) if engine_ok else Check("buildx", False, "engine missing", True))
    if builder:
        checks.append(_builder_check(builder, reporter))
    checks.extend(_emulation_checks(platforms))
    checks.extend(_registry_check(host, settings) for host in configured_registries(settings))
    return checks


def configured_registries(settings: Settings) -> list[MirrorHost]:
    """Every registry and mirror the settings name, once each (a mirror's path prefix does
    not matter here: /v2/ is at the host)."""
    candidates = [settings.build_registry, *settings.insecure_registries]
    for mirror_list in settings.mirrors.values():
        candidates.extend(mirror_list)
    if settings.docker_registry not in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        candidates.append(settings.docker_registry)
    hosts: dict[str, MirrorHost] = {}
    for entry in filter(None, candidates):
        host = parse_mirror(entry)
        hosts.setdefault(host.host, MirrorHost(host.host, scheme=host.scheme))
    return list(hosts.values())


def _engine_checks() -> list[Check]:
    import docker
    import docker.errors

    fix = "start the Docker engine (scripts/bootstrap on a test bed) or set DOCKER_HOST"
    try:
        client = docker.from_env(timeout=10)
        info = client.info()
        version = client.version()
    except docker.errors.DockerException as exc:
        reason = str(exc).splitlines()[0][:160]
        return [
            Check("engine", False, f"not reachable: {reason}", True, fix),
            Check("containerd image store", False, "engine missing", False),
        ]
    server = str(version.get("Version", "?"))
    major = int(re.match(r"\d+", server).group(0)) if re.match(r"\d+", server) else 0  # type: ignore[union-attr]
    engine = Check(
        "engine",
        major >= MIN_ENGINE_MAJOR,
        f"Docker {server} ({info.get('OperatingSystem', '?')})",
        True,
        f"upgrade the Docker engine to >= {MIN_ENGINE_MAJOR}",
    )
    driver_status = " ".join(str(item) for item in info.get("DriverStatus") or [])
    containerd = "io.containerd.snapshotter" in driver_status
    store = Check(
        "containerd image store",
        containerd,
        str(info.get("Driver", "?")) + (" (containerd snapshotter)" if containerd else ""),
        False,
        'set {"features": {"containerd-snapshotter": true}} in /etc/docker/daemon.json and restart dockerd',
    )
    return [engine, store]


def buildx_version(reporter: Reporter) -> str:
    try:
        out = proc.run(["docker", "buildx", "version"], reporter, capture=True, what="docker buildx version").stdout
    except ToolkitError:
        return ""
    match = re.search(r"v?(\d+\.\d+\.\d+)", out)
    return match.group(1) if match else ""


def _buildx_check(reporter: Reporter) -> Check:
    version = buildx_version(reporter)
    fix = "install the docker-buildx plugin (Debian: docker-buildx)"
    return Check("buildx", bool(version), version or "missing", True, fix)


def _emulation_checks(platforms: tuple[str, ...]) -> list[Check]:
    from ci_toolkit.build import emulation

    checks = []
    for platform in platforms or tuple(EMULATED):
        enabled = emulation.runnable(platform, BINFMT_DIR)
        name = emulation.handler(platform)
        detail = f"native or binfmt {name} enabled" if enabled else f"no binfmt handler {name}"
        checks.append(Check(f"emulation {platform}", enabled, detail, bool(platforms), emulation.hint([platform])))
    return checks


def _builder_check(name: str, reporter: Reporter) -> Check:
    """``buildx inspect --bootstrap``: the builder exists, starts, and says what it builds."""
    done = proc.run(
        ["docker", "buildx", "inspect", "--bootstrap", name],
        reporter,
        capture=True,
        check=False,
        echo=False,
        what="buildx inspect",
    )
    fields: dict[str, str] = {}
    for line in done.stdout.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    ok = done.returncode == 0 and fields.get("Status") == "running"
    detail = (
        f"{fields.get('Driver', '?')} driver, {fields.get('Endpoint', '?')}, platforms {fields.get('Platforms', '?')}"
        if ok
        else (done.stderr_tail.strip().splitlines() or [f"status {fields.get('Status', 'unknown')}"])[-1]
    )
    fix = (
        f"create it: ci-toolkit setup-builder --name {name} (--driver docker --endpoint unix:///... for another engine)"
    )
    return Check(f"builder {name}", ok, detail, True, fix)


def _registry_check(host: MirrorHost, settings: Settings) -> Check:
    answer = probe(host, settings)
    fix = (
        f"start {host.host} or fix its address"
        if answer.status is None
        else f"check that {host.host} is an OCI registry"
    )
    return Check(f"registry {host.host}", answer.ok, answer.detail, True, fix)
