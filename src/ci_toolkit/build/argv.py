"""Checks on a build request and the ``docker buildx build`` argv it turns into. Pure: no
subprocess, nothing created, so every bad input is refused before anything happens."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ci_toolkit.core import refs
from ci_toolkit.core.ci import CIContext
from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.report import Masker, Reporter, without_userinfo
from ci_toolkit.core.settings import Settings

_PLATFORM = re.compile(r"[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?")
_ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LABEL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")
_CONTEXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]*")

TYPE_CHECKING = False  # not typing's: importing typing costs every command's start-up (CONTRIBUTING)
if TYPE_CHECKING:
    from datetime import datetime


def check_platforms(platforms: Sequence[str]) -> tuple[str, ...]:
    out: list[str] = []
    for item in platforms:
        for platform in item.split(","):
            platform = platform.strip()
            if not _PLATFORM.fullmatch(platform):
                raise ToolkitError.bad_input(f"bad platform {platform!r}: expected os/arch[/variant], e.g. linux/arm64")
            if platform not in out:
                out.append(platform)
    return tuple(out)


def check_tag(ref: str) -> str:
    """The engine's reference grammar (``core.refs``); the text is passed on as written."""
    refs.parse_reference(ref)
    return ref


def parse_pairs(items: Sequence[str], what: str) -> dict[str, str]:
    """``K=V`` strings (--build-arg, --label, --build-context) into a dict; ``=`` required."""
    out: dict[str, str] = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name:
            raise ToolkitError.bad_input(f"{what} {item!r} needs the form KEY=VALUE")
        out[name] = value
    return out


def check_names(build_args: Mapping[str, str], labels: Mapping[str, str], contexts: Mapping[str, str]) -> None:
    for name, value in build_args.items():
        if not _ARG_NAME.fullmatch(name):
            raise ToolkitError.bad_input(f"bad --build-arg name {name!r}: letters, digits and _ only")
        _no_nul(value, f"--build-arg {name}")
    for name, value in labels.items():
        if not _LABEL_KEY.fullmatch(name):
            raise ToolkitError.bad_input(f"bad --label key {name!r}")
        _no_nul(value, f"--label {name}")
    for name, value in contexts.items():
        if not _CONTEXT_NAME.fullmatch(name) or not value:
            raise ToolkitError.bad_input(f"bad --build-context {name!r}: expected NAME=VALUE")
        _no_nul(value, f"--build-context {name}")


def _no_nul(value: str, what: str) -> None:
    if "\0" in value:
        raise ToolkitError.bad_input(f"{what} contains a NUL character")


def is_remote_context(context: str) -> bool:
    return "://" in context or context.startswith("git@") or context == "-"


def resolve_paths(context: str, dockerfile: str, inline: bool, cwd: Path) -> tuple[str, str]:
    """The context and Dockerfile as given to buildx; a missing one is bad input naming it."""
    if "\0" in context or "\0" in dockerfile:
        raise ToolkitError.bad_input("context or Dockerfile path contains a NUL character")
    if is_remote_context(context):
        return context, dockerfile
    ctx = Path(context) if Path(context).is_absolute() else cwd / context
    if not ctx.is_dir():
        raise ToolkitError.bad_input(f"build context {context} not found (looked for directory {ctx})")
    if inline:
        return str(ctx), "-"
    path = (
        (Path(dockerfile) if Path(dockerfile).is_absolute() else cwd / dockerfile) if dockerfile else ctx / "Dockerfile"
    )
    if not path.is_file():
        raise ToolkitError.bad_input(f"Dockerfile {dockerfile or path} not found (looked for {path})")
    return str(ctx), str(path)


def docker_registry_arg(
    settings: Settings, build_args: Mapping[str, str], reporter: Reporter | None = None
) -> dict[str, str]:
    """The ``DOCKER_REGISTRY`` build arg every build gets unless the user set it: the Docker
    Hub mirror when its probe answers, else the upstream (see ``mirror.effective_docker_registry``)."""
    if "DOCKER_REGISTRY" in build_args:
        return {}
    from ci_toolkit.mirror.resolve import effective_docker_registry

    return {"DOCKER_REGISTRY": effective_docker_registry(settings, reporter or Reporter())}


def toolkit_labels(
    ci: CIContext, env: Mapping[str, str], settings: Settings, now: datetime | None = None
) -> dict[str, str]:
    """OCI annotations from the CI context plus the build-number label."""
    if now is None:  # time, not datetime: datetime is not needed for anything else on a build
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    else:
        created = now.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    labels = {"org.opencontainers.image.created": created}
    if ci.sha:
        labels["org.opencontainers.image.revision"] = ci.sha
    source = source_url(env)
    if source:
        labels["org.opencontainers.image.source"] = source
    labels["org.opencontainers.image.version"] = ci.build_tag
    if settings.build_number_label and ci.build_number:
        labels[f"{settings.label_prefix}.build-number"] = ci.build_number
    return labels


def source_url(env: Mapping[str, str]) -> str:
    """The repository's URL for the image's source label, without credentials: Jenkins' GIT_URL
    often carries ``user:token@``, and a label is pushed with the image for anyone to read."""
    return without_userinfo(_source_url(env))


def _source_url(env: Mapping[str, str]) -> str:
    if env.get("GITHUB_REPOSITORY"):
        return f"{env.get('GITHUB_SERVER_URL', 'https://github.com')}/{env['GITHUB_REPOSITORY']}"
    for name in ("CI_PROJECT_URL", "BUILDKITE_REPO", "GIT_URL"):
        if env.get(name):
            return env[name]
    if env.get("CIRRUS_REPO_CLONE_URL"):
        return env["CIRRUS_REPO_CLONE_URL"].removesuffix(".git")
    return ""


@dataclass(frozen=True, kw_only=True)
class Argv:
    """Resolved pieces of one ``docker buildx build`` call."""

    context: str
    dockerfile: str
    target: str
    platforms: tuple[str, ...]
    tags: tuple[str, ...]
    push: bool
    load: bool
    build_args: Mapping[str, str]
    labels: Mapping[str, str]
    build_contexts: Mapping[str, str]
    secrets: tuple[str, ...]
    cache_from: tuple[str, ...]
    cache_to: tuple[str, ...]
    extra_args: tuple[str, ...]
    metadata_file: str
    builder: str
    outputs: tuple[str, ...] = ()
    provenance: str = ""
    sbom: str = ""
    attests: tuple[str, ...] = ()
    annotations: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    """More buildx options, already in argv form (--no-cache, --pull, --ssh, --network, --output)."""


def secret_build_args(argv: Sequence[str], masker: Masker) -> tuple[list[str], dict[str, str]]:
    """``argv`` with every ``--build-arg NAME=VALUE`` whose value holds a secret (ours or from
    extra args) turned into ``--build-arg NAME``, and those values for buildx's environment,
    where it reads them: a command line is readable by every user in /proc/<pid>/cmdline."""
    out: list[str] = []
    env: dict[str, str] = {}
    words = iter(argv)
    for word in words:
        joined = word.startswith("--build-arg=")
        pair = word.removeprefix("--build-arg=") if joined else next(words, None) if word == "--build-arg" else None
        if pair is None:
            out.append(word)
            continue
        name, eq, value = pair.partition("=")
        if eq and _ARG_NAME.fullmatch(name) and masker(value) != value:
            env[name] = value
            pair = name
        out += [f"--build-arg={pair}"] if joined else ["--build-arg", pair]
    return out, env


def assemble(a: Argv) -> list[str]:
    argv = ["docker", "buildx", "build"]
    if a.builder:
        argv += ["--builder", a.builder]
    if not any(t == "--progress" or t.startswith("--progress=") for t in a.extra_args):
        # Plain progress is what a CI log wants, and what cache-hit counting reads.
        argv += ["--progress", "plain"]
    argv += ["--file", a.dockerfile]
    if a.target:
        argv += ["--target", a.target]
    if a.platforms:
        argv += ["--platform", ",".join(a.platforms)]
    for tag in a.tags:
        argv += ["--tag", tag]
    if a.push:
        argv.append("--push")
    if a.load:
        argv.append("--load")
    argv += list(a.outputs)
    for name, value in a.build_args.items():
        argv += ["--build-arg", f"{name}={value}"]
    for name, value in a.labels.items():
        argv += ["--label", f"{name}={value}"]
    for name, value in a.build_contexts.items():
        argv += ["--build-context", f"{name}={value}"]
    for spec in a.secrets:
        argv += ["--secret", spec]
    argv += _supply_chain(a)
    for value in a.cache_from:
        argv += ["--cache-from", value]
    for value in a.cache_to:
        argv += ["--cache-to", value]
    argv += ["--metadata-file", a.metadata_file]
    argv += list(a.extra_args)
    argv.append(a.context)
    return argv


def _supply_chain(a: Argv) -> list[str]:
    argv: list[str] = []
    if a.provenance:
        argv.append(f"--provenance={a.provenance}")
    if a.sbom:
        argv.append(f"--sbom={a.sbom}")
    for spec in a.attests:
        argv += ["--attest", spec]
    for value in a.annotations:
        argv += ["--annotation", value]
    return argv + list(a.flags)


NETWORKS = ("default", "none", "host")


def option_flags(
    *, no_cache: bool, pull: bool, ssh: Sequence[str], network: str, outputs: Sequence[str]
) -> tuple[str, ...]:
    """build-push-action's no-cache, pull, ssh, network and outputs as buildx options."""
    if network and network not in NETWORKS:
        raise ToolkitError.bad_input(f"--network {network!r}: one of {', '.join(NETWORKS)}")
    for value in (*ssh, *outputs):
        _no_nul(value, "--ssh/--output")
    flags = ["--no-cache"] if no_cache else []
    flags += ["--pull"] if pull else []
    flags += [a for spec in ssh for a in ("--ssh", spec)]
    flags += ["--network", network] if network else []
    return tuple(flags + [a for spec in outputs for a in ("--output", spec)])


_ANNOTATION = re.compile(
    r"(?:(?:manifest|index|manifest-descriptor|index-descriptor)(?:\[[a-z0-9/_,]+\])?:)?[A-Za-z0-9][A-Za-z0-9._/-]*=.*",
    re.DOTALL,
)


def check_annotations(values: Sequence[str]) -> tuple[str, ...]:
    """``[LEVEL[platform]:]KEY=VALUE`` as buildx takes them; one flag per level (buildx 0.13
    reads ``index,manifest:k=v`` as a key)."""
    for value in values:
        if not _ANNOTATION.fullmatch(value) or "\0" in value:
            raise ToolkitError.bad_input(
                f"bad --annotation {value!r}: expected [manifest|index|manifest-descriptor|index-descriptor:]KEY=VALUE"
            )
    return tuple(values)


def makes_index(
    platforms: Sequence[str],
    provenance: str,
    sbom: str,
    attests: Sequence[str],
    extra: Sequence[str],
    env: Mapping[str, str],
) -> bool:
    """Whether buildx will push an image index (so ``index:`` annotations have a place): more
    than one platform, or any attestation (buildx adds min provenance unless told not to)."""
    if len(platforms) > 1 or sbom not in ("", "false") or any("disabled=true" not in a for a in attests):
        return True
    joined = " ".join(extra).replace("--provenance ", "--provenance=")
    if provenance == "false" or "--provenance=false" in joined or "type=provenance,disabled=true" in joined:
        return False
    if "--sbom=true" in joined.replace("--sbom ", "--sbom=") or "--attest" in joined:
        return True
    return bool(provenance) or not env.get("BUILDX_NO_DEFAULT_ATTESTATIONS")


def secret_env_names(secrets: Sequence[str]) -> list[str]:
    """Environment variables named by ``--secret`` specs (``env=VAR``; ``id=VAR`` alone too)."""
    names: list[str] = []
    for spec in secrets:
        fields = dict(part.partition("=")[::2] for part in spec.split(","))
        if "env" in fields:
            names.append(fields["env"])
        elif "src" not in fields and "id" in fields:
            names.append(fields["id"])
    return names
