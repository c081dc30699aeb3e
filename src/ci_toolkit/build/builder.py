"""Create the buildx builder the mirror settings need, idempotently: the rendered
buildkitd.toml and the builder's parameters are hashed; a builder whose hash is unchanged is
reused, a changed one is removed and created again.

Public entry: ``setup_builder(request, settings, reporter, state_dir, dry_run=...)``."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ci_toolkit.core import proc
from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.files import write_atomic
from ci_toolkit.core.report import Reporter
from ci_toolkit.core.settings import Settings
from ci_toolkit.mirror.render import buildkitd_toml

DRIVERS = ("docker-container", "remote", "kubernetes", "docker")


@dataclass(frozen=True, kw_only=True)
class BuilderRequest:
    name: str
    driver: str = "docker-container"
    endpoint: str = ""
    bootstrap: bool = False
    use: bool = False
    driver_opts: tuple[str, ...] = ()


@dataclass(frozen=True)
class BuilderResult:
    name: str
    action: str  # created | recreated | reused
    config_path: str
    config: str
    commands: list[list[str]]


def state_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".local" / "state")
    return Path(base) / "ci-toolkit" / "builders"


def _validate(req: BuilderRequest) -> None:
    if req.driver not in DRIVERS:
        raise ToolkitError.bad_input(f"--driver must be one of {', '.join(DRIVERS)}, got {req.driver!r}")
    if req.driver == "docker" and not req.endpoint:
        raise ToolkitError.bad_input("--driver docker needs --endpoint (the engine: unix:///path/docker.sock)")
    if req.driver == "remote" and not req.endpoint:
        raise ToolkitError.bad_input("--driver remote needs --endpoint (e.g. tcp://buildkitd:1234)")
    if not req.name or not all(c.isalnum() or c in "-_." for c in req.name):
        raise ToolkitError.bad_input(f"invalid builder name {req.name!r}: use letters, digits, '-', '_' and '.'")


def create_argv(req: BuilderRequest, config_path: Path) -> list[str]:
    argv = ["docker", "buildx", "create", "--name", req.name, "--driver", req.driver]
    # The remote driver's buildkitd is configured where it runs; buildx refuses --config there.
    if req.driver != "remote":
        argv += ["--config", str(config_path)]
    for opt in req.driver_opts:
        argv += ["--driver-opt", opt]
    if req.bootstrap:
        argv.append("--bootstrap")
    if req.use:
        argv.append("--use")
    if req.endpoint:
        argv.append(req.endpoint)
    return argv


def config_hash(req: BuilderRequest, config: str) -> str:
    identity = {"driver": req.driver, "endpoint": req.endpoint, "opts": list(req.driver_opts), "config": config}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _exists(name: str, reporter: Reporter) -> bool:
    done = proc.run(["docker", "buildx", "inspect", name], reporter, capture=True, check=False, echo=False)
    return done.returncode == 0


def setup_builder(
    req: BuilderRequest, settings: Settings, reporter: Reporter, directory: Path, *, dry_run: bool = False
) -> BuilderResult:
    _validate(req)
    if req.driver == "docker":
        from ci_toolkit.build.context import ensure_context

        action, commands = ensure_context(req.name, req.endpoint, reporter, dry_run=dry_run)
        return BuilderResult(req.name, action, "", "", commands)
    config = buildkitd_toml(settings)
    if dry_run:
        return _apply(req, config, reporter, directory, dry_run=True)
    # Jobs on one runner meet here: inspect -> rm -> create must not interleave.
    with _builder_lock(directory, req.name):
        return _apply(req, config, reporter, directory, dry_run=False)


@contextlib.contextmanager
def _builder_lock(directory: Path, name: str) -> Iterator[None]:
    path = directory / f"{name}.lock"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise ToolkitError.from_os_error(exc, f"cannot lock {path}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _apply(req: BuilderRequest, config: str, reporter: Reporter, directory: Path, *, dry_run: bool) -> BuilderResult:
    """Reuse, create or recreate. A dry run runs nothing, not even ``buildx inspect``: the
    stamp alone says whether a builder of this config was set up here."""
    config_path = directory / f"{req.name}.buildkitd.toml"
    stamp_path = directory / f"{req.name}.sha256"
    digest = config_hash(req, config)
    previous = _read(stamp_path)
    exists = bool(previous) if dry_run else _exists(req.name, reporter)
    if exists and previous == digest:
        reporter.info(f"builder {req.name} is up to date (config {digest[:12]})")
        return BuilderResult(req.name, "reused", str(config_path), config, [])
    commands: list[list[str]] = []
    if exists:
        reporter.info(f"builder {req.name} has a different config: recreating it")
        commands.append(["docker", "buildx", "rm", req.name])
    commands.append(create_argv(req, config_path))
    if dry_run:
        reporter.info(f"would write {config_path}:\n{config}")
    else:
        _write(config_path, config)
    for argv in commands:
        proc.run(argv, reporter, dry_run=dry_run, echo=True, what=" ".join(argv[:3]))
    if req.driver == "remote":
        reporter.warning(
            f"the remote driver's buildkitd reads its own config: install {config_path} there as "
            "/etc/buildkit/buildkitd.toml for the mirrors to apply"
        )
    if not dry_run:
        _write(stamp_path, digest + "\n")
    return BuilderResult(req.name, "recreated" if exists else "created", str(config_path), config, commands)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _write(path: Path, text: str) -> None:
    write_atomic(path, text, parents=True)
