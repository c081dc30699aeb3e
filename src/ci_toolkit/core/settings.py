"""The settings: one frozen dataclass, and the metadata (kind, help, secret, choices) from
which the cascade, validation, ``config show`` and the README reference are all derived."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

TYPE_CHECKING = False  # not typing's: importing typing costs every command's start-up (CONTRIBUTING)
if TYPE_CHECKING:
    from typing import Any

KINDS = ("str", "bool", "int", "list", "map", "map-list")


def _setting(
    default: Any, kind: str, help: str, *, secret: bool = False, choices: tuple[str, ...] = (), trusted: bool = False
) -> Any:
    # trusted: only the CI configuration may set it (global files, environment, command line),
    # never files that come with the code under review (the project file, .env files).
    meta = {"kind": kind, "help": help, "secret": secret, "choices": choices, "trusted": trusted}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: default.copy(), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Every setting, resolved once per command (see ``core.config``)."""

    docker_registry: str = _setting(
        "docker.io", "str", "Registry for Docker Hub images; {{ DOCKER_REGISTRY }} and --build-arg DOCKER_REGISTRY."
    )
    build_registry: str = _setting(
        "", "str", "Registry where pipeline steps push intermediate, immutable images (e.g. 127.0.0.1:5000)."
    )
    cross_step_bases: str = _setting(
        "auto",
        "str",
        "With no build-registry, how a step's image reaches later steps: auto (the engine when it can, "
        "else a temporary registry), engine, or temporary-registry.",
        choices=("auto", "engine", "temporary-registry"),
    )
    temporary_registry_image: str = _setting(
        "registry:2",
        "str",
        "Image of the loopback registry a pipeline starts for cross-step bases when there is no build-registry "
        "and the engine cannot hand images between steps itself.",
    )
    mirrors: Mapping[str, list[str]] = _setting(
        {}, "map-list", "Registry mirrors per registry host, e.g. {docker.io: [mirror.example:5000]}."
    )
    mirror_required: bool = _setting(False, "bool", "Fail instead of falling back when no mirror answers.")
    insecure_registries: list[str] = _setting(
        [], "list", "Registries reached over plain HTTP or without TLS verification."
    )
    hub_registry: str = _setting(
        "docker.io",
        "str",
        "Docker Hub upstream of the mirror: where docker.io pulls go when no mirror answers (test beds: a stand-in).",
    )
    mirror_timeout: str = _setting("3s", "str", "How long the mirror probe (GET /v2/) may take before falling back.")
    registry_ca: Mapping[str, list[str]] = _setting(
        {}, "map-list", "CA certificate files per registry host, for buildkitd.toml and hosts.toml."
    )
    registry_keypairs: Mapping[str, list[str]] = _setting(
        {}, "map-list", "Client certificate pairs per registry host, each CERT_FILE:KEY_FILE."
    )
    buildkit_max_parallelism: int = _setting(0, "int", "BuildKit [worker.oci] max-parallelism (0: BuildKit's default).")
    extra_args_env: str = _setting(
        "CI_IMAGE_BUILD_EXTRA_ARGS", "str", "Environment variable holding extra buildx arguments.", trusted=True
    )
    builder: str = _setting("", "str", "buildx builder to use (default: the current builder).")
    cache_root: str = _setting("", "str", "Local build cache root (default: $XDG_CACHE_HOME/ci-toolkit/buildx).")
    cache_backend: str = _setting("local", "str", "Build cache backend.", choices=("local", "registry", "gha", "none"))
    cache_ref: str = _setting("", "str", "Repository for the registry cache backend.")
    cache_compression: str = _setting(
        "zstd",
        "str",
        "Compression of the cache blobs the toolkit exports (zstd imports faster after an engine wipe).",
        choices=("zstd", "gzip", "uncompressed"),
    )
    cache_compression_level: int = _setting(
        0,
        "int",
        "Compression level of exported cache blobs (0: the default for the compression: zstd 3, chosen by "
        "benchmark B5; gzip BuildKit's). zstd 1-22, gzip 1-9.",
    )
    cache_mounts: list[str] = _setting(
        ["auto"],
        "list",
        "RUN --mount=type=cache content kept in the local cache store across engines: auto (every cache mount "
        "of the Dockerfile), none, or the mount ids (targets when a mount has no id) to keep.",
    )
    cache_mounts_max_size: str = _setting(
        "2G", "str", "Size bound of the cache mounts saved per cache key (oldest files evicted first)."
    )
    cache_mounts_image: str = _setting(
        "library/busybox:latest",
        "str",
        "Image of the helper builds that move cache mount content (a shell and tar; a path without a registry "
        "host is pulled from the docker-registry setting's registry).",
    )
    cache_transport: str = _setting(
        "auto",
        "str",
        "How the local cache entry travels when the runner keeps no disk: a CI cache service restores it before "
        "the build and saves it after (the entry then keeps one generation). auto: actions-cache on "
        "GitHub-hosted runners, else none.",
        choices=("auto", "actions-cache", "gitlab-cache", "cirrus-cache", "none"),
    )
    cache_required: bool = _setting(
        False, "bool", "Fail the build (exit 1) when its local cache cannot be saved (full or read-only disk)."
    )
    cache_max_size: str = _setting("20G", "str", "Default size bound for `cache prune`.")
    cache_max_age: str = _setting("14d", "str", "Default age bound for `cache prune`.")
    build_number_label: bool = _setting(True, "bool", "Add the toolkit's build-number label to images.")
    oci_annotations: bool = _setting(
        True,
        "bool",
        "Also write the toolkit's OCI metadata (created, revision, source, version) as annotations on "
        "manifests, and on the index when one is pushed.",
    )
    label_prefix: str = _setting("ci-toolkit", "str", "Prefix of every label the toolkit sets.")
    container_labels: Mapping[str, str] = _setting(
        {}, "map", "Extra labels for every container, network and volume (key1=value1,key2=value2)."
    )
    job_id: str = _setting("", "str", "Job id for labels and sweeps (default: from the CI).")
    pull_policy: str = _setting(
        "if-not-present", "str", "When to pull run and service images.", choices=("always", "if-not-present", "never")
    )
    service_timeout: str = _setting("60s", "str", "How long a service may take to open its port.")
    retries: int = _setting(
        3, "int", "Retries of a registry operation after a transient fault (5xx, 429, reset, EOF, timeout)."
    )
    retry_max_wait: str = _setting(
        "60s", "str", "The longest wait before one retry (and the most a Retry-After may ask)."
    )
    stop_grace: str = _setting(
        "10s", "str", "On a cancel, how long a child process (buildx, docker) has after SIGTERM before SIGKILL."
    )
    registry_user: str = _setting("", "str", "Registry user name (else Docker's config.json).")
    registry_password: str = _setting("", "str", "Registry password or token.", secret=True)
    allow_paths_outside_project: bool = _setting(
        False,
        "bool",
        "Let project-file paths (build path, dockerfile, import, inject, secrets src=, run workdir and files) "
        "point outside the project directory.",
        trusted=True,
    )


SETTING_FIELDS = {f.name.replace("_", "-"): f for f in fields(Settings)}


def setting_keys() -> list[str]:
    return list(SETTING_FIELDS)


def kind_of(key: str) -> str:
    return str(SETTING_FIELDS[key].metadata["kind"])


def is_trusted_only(key: str) -> bool:
    return bool(SETTING_FIELDS[key].metadata["trusted"])


def is_secret(key: str) -> bool:
    return bool(SETTING_FIELDS[key].metadata["secret"])


def env_name(key: str) -> str:
    return "CI_TOOLKIT_" + key.upper().replace("-", "_")
