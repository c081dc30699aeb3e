from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from ci_toolkit.app import App
from ci_toolkit.containers.run import PULL_POLICIES, RunRequest, check_request, run_in_container
from ci_toolkit.containers.services import parse_services
from ci_toolkit.core import units
from ci_toolkit.core.errors import ToolkitError


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "run",
        parents=[common],
        help="run a command in a container next to its services",
        description="Run CMD in IMAGE on a network of its own, after starting each service and waiting for "
        "its first exposed TCP port. The working directory is mounted at /workspace; the command's exit "
        "code is ours. Everything created is labelled and removed on exit and on SIGTERM/SIGINT/SIGHUP.",
    )
    parser.add_argument("image", help="image for the command")
    parser.add_argument(
        "cmd",
        nargs=argparse.REMAINDER,
        metavar="[OPTIONS --] CMD",
        help="command and arguments (default: the image's); as with docker run, options after IMAGE "
        "need a `--` before the command, and without one everything after IMAGE is the command",
    )
    _add_options(parser)
    # Options written between IMAGE and `--` are parsed by this second parser, into the same
    # namespace: SUPPRESS keeps the values given before IMAGE.
    late = type(parser)(prog=f"{parser.prog} IMAGE", add_help=False, argument_default=argparse.SUPPRESS)
    _add_options(late)
    parser.set_defaults(handler=run, late_options=late)


def _add_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--service",
        action="append",
        default=[],
        metavar="IMAGE[:TAG][:ALIAS]|MAPPING|FILE",
        help="a service (repeatable): an image, an inline YAML/JSON mapping or a .yaml/.json file of GitLab "
        "services: keywords (name, alias, entrypoint, command, variables, pull_policy) and wait_for (ports)",
    )
    add("--env", action="append", default=[], metavar="K=V|K", help="variable for the command and services")
    add(
        "--secret-env",
        action="append",
        default=[],
        metavar="K|K=V",
        help="secret for the command only (K alone: taken from our environment); masked",
    )
    add("--service-env", action="append", default=[], metavar="K=V|K", help="variable for services only")
    add("--volume", action="append", default=[], metavar="SRC:DST[:ro]", help="bind mount or named volume")
    add("--tmpfs", action="append", default=[], metavar="PATH[:OPTS]", help="tmpfs in the command's container")
    add("--services-tmpfs", action="append", default=[], metavar="PATH[:OPTS]", help="tmpfs in every service")
    add("--pull-policy", choices=PULL_POLICIES, help="when to pull (default: setting pull-policy)")
    add("--workdir", metavar="DIR", default="", help="host directory mounted at /workspace (default: .)")
    add("--timeout", metavar="DURATION", help="kill the command after this long (e.g. 30m)")
    add("--service-timeout", metavar="DURATION", help="readiness timeout per service (default: setting)")
    add("--container-labels", metavar="K=V,...", action="append", default=[], help="extra labels")
    add("--step", default="", help="step name recorded in the labels")


def _split_command(args: argparse.Namespace) -> list[str]:
    """``IMAGE [OPTIONS] -- CMD``: the options go into ``args``; the rest is the command."""
    words = list(args.cmd)
    if "--" not in words:
        return words
    cut = words.index("--")
    if cut:
        args.late_options.parse_args(words[:cut], namespace=args)
    return words[cut + 1 :]


def run(args: argparse.Namespace, app: App) -> int:
    command = _split_command(args)
    env = app.env
    settings = app.settings
    if args.container_labels:
        user = {**settings.container_labels, **units.parse_pairs(args.container_labels, "--container-labels")}
        settings = dataclasses.replace(settings, container_labels=user)
    secret_env = _pairs(args.secret_env, env, "--secret-env")
    for value in secret_env.values():
        app.reporter.add_secret(value)  # before anything below can print it (the dry-run plan too)
    request = RunRequest(
        image=args.image,
        command=tuple(command),
        services=tuple(spec for value in args.service for spec in parse_services(value, app.cwd)),
        env=_pairs(args.env, env, "--env"),
        secret_env=secret_env,
        service_env=_pairs(args.service_env, env, "--service-env"),
        volumes=tuple(args.volume),
        tmpfs=_tmpfs(args.tmpfs),
        services_tmpfs=_tmpfs(args.services_tmpfs),
        workdir=args.workdir,
        pull_policy=args.pull_policy or settings.pull_policy,
        timeout=units.parse_duration(args.timeout, "--timeout", positive=True) if args.timeout else None,
        service_timeout=units.parse_duration(
            args.service_timeout or settings.service_timeout, "service-timeout", positive=True
        ),
        step=args.step,
        home=env.get("HOME", ""),
    )
    if app.dry_run:
        check_request(request)
        app.reporter.result(dataclasses.asdict(request) | {"secret_env": sorted(request.secret_env)}, _plan(request))
        return 0
    return run_in_container(request, settings=settings, ci=app.ci, reporter=app.reporter, cwd=app.cwd)


def _pairs(items: Sequence[str], env: Mapping[str, str], option: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key or any(c.isspace() for c in key):
            shown = f"{key[:40]!r}=..." if option == "--secret-env" else repr(item)
            raise ToolkitError.bad_input(f"{option} expects K=V or K, got {shown}")
        if not sep:
            if key not in env:
                raise ToolkitError.bad_input(f"{option} {key}: no such variable in the environment")
            value = env[key]
        result[key] = value
    return result


def _tmpfs(items: Sequence[str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in items:
        path, _, opts = item.partition(":")
        if not path.startswith("/"):
            raise ToolkitError.bad_input(f"--tmpfs expects an absolute PATH[:OPTS], got {item!r}")
        result[path] = opts
    return result


def _plan(request: RunRequest) -> str:
    lines = [
        f"would start service {s.image}" + (f" as {', '.join(s.aliases)}" if s.aliases else "")
        for s in request.services
    ]
    lines.append(f"would run {request.image} {' '.join(request.command)}".rstrip())
    return "\n".join(lines)
