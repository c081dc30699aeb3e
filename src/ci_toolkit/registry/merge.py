"""Merge per-platform images, pushed by digest, into one index inside the registry.

Nothing is pulled or pushed but the index itself: each platform manifest stays the bytes its
build pushed. Before any tag is written the merge checks that every digest exists, that no
platform comes twice and that every expected platform is there; a missing one fails the merge
(exit 1, naming it) with no tag touched.

The index keeps the descriptors' annotations (and the attestation manifests of a source that
was itself an index), the source indexes' annotations, and, as index annotations, the
``org.opencontainers.image.*`` and ``<label-prefix>.*`` labels the platform images agree on
(``created`` the newest of them), so ``promote`` orders a merged index without opening it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ci_toolkit.core import refs
from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.refs import valid_tag
from ci_toolkit.core.report import Reporter
from ci_toolkit.core.settings import Settings
from ci_toolkit.core.units import parse_time
from ci_toolkit.registry.client import OCI_INDEX, Manifest, RegistryClient, RetryPolicy, connect, sha256_digest
from ci_toolkit.registry.digests import DigestRecord, platform_key

TYPE_CHECKING = False  # not typing's: importing typing costs every command's start-up (CONTRIBUTING)
if TYPE_CHECKING:
    from typing import Any

CREATED = "org.opencontainers.image.created"


@dataclass(frozen=True, kw_only=True)
class MergeRequest:
    """``repository`` is ``host/path``; ``digests`` are ``sha256:...`` of images (or indexes)
    already in it; ``records`` come from digest files; ``platforms`` are the expected ones."""

    repository: str
    digests: tuple[str, ...] = ()
    records: tuple[DigestRecord, ...] = ()
    tags: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    dry_run: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True, kw_only=True)
class MergeResult:
    repository: str
    digest: str
    platforms: Mapping[str, str]
    """platform -> manifest digest, as in the index."""
    tags: tuple[str, ...]
    requests: int
    seconds: float
    written: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "digest": self.digest,
            "image": f"{self.repository}@{self.digest}",
            "platforms": dict(self.platforms),
            "tags": list(self.tags),
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "written": self.written,
        }


@dataclass
class _Entry:
    descriptor: dict[str, Any]
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return str(self.descriptor["digest"])

    @property
    def platform(self) -> str:
        p = self.descriptor.get("platform") or {}
        return "/".join(str(p[k]) for k in ("os", "architecture", "variant") if p.get(k))

    @property
    def is_attestation(self) -> bool:
        annotations = self.descriptor.get("annotations") or {}
        return annotations.get("vnd.docker.reference.type") == "attestation-manifest" or self.platform.startswith(
            "unknown/"
        )


@dataclass(frozen=True)
class PreparedMerge:
    """A checked merge: the index is built, nothing is written yet."""

    client: RegistryClient
    host: str
    path: str
    index: Manifest
    platforms: Mapping[str, str]
    tags: tuple[str, ...]
    started: float

    def write(self, *, dry_run: bool = False) -> MergeResult:
        """PUT the index under each tag (by digest alone when there is none)."""
        repo = f"{self.host}/{self.path}"
        if not dry_run:
            for ref in self.tags or (self.index.digest,):
                self.client.put_manifest(self.path, ref, self.index)
        refs = tuple(f"{repo}:{t}" for t in self.tags) or (f"{repo}@{self.index.digest}",)
        return MergeResult(
            repository=repo,
            digest=self.index.digest,
            platforms=self.platforms,
            tags=refs,
            requests=self.client.request_count,
            seconds=time.monotonic() - self.started,
            written=not dry_run,
        )


def prepare(
    request: MergeRequest,
    *,
    settings: Settings,
    env: Mapping[str, str],
    reporter: Reporter,
    client: RegistryClient | None = None,
) -> PreparedMerge:
    """Read every digest and check the platforms; raises before anything is written."""
    started = time.monotonic()
    host, path = _check(request)
    client = client or connect(host, settings=settings, env=env, reporter=reporter, retry=request.retry)
    client.want_scope(path, "pull,push")
    entries, annotations = _collect(client, path, request)
    platforms = _check_platforms(entries, request, f"{host}/{path}")
    index = _index(entries, annotations, settings.label_prefix)
    return PreparedMerge(client, host, path, index, platforms, request.tags, started)


def merge(
    request: MergeRequest,
    *,
    settings: Settings,
    env: Mapping[str, str],
    reporter: Reporter,
    client: RegistryClient | None = None,
) -> MergeResult:
    """Check, build the index, and only then write it under each tag (or by digest alone)."""
    prepared = prepare(request, settings=settings, env=env, reporter=reporter, client=client)
    return prepared.write(dry_run=request.dry_run)


def _check(request: MergeRequest) -> tuple[str, str]:
    text = request.repository
    if "@" in text or (":" in text.rsplit("/", 1)[-1]):
        raise ToolkitError.bad_input(f"merge {text}: give the repository without a tag or digest (tags: --tag)")
    parsed = refs.parse_reference(text)
    for tag in request.tags:
        if not valid_tag(tag):
            raise ToolkitError.bad_input(f"invalid tag {tag!r}: use letters, digits, '_', '.', '-' (max 128)")
    for digest in request.digests:
        if not digest.startswith("sha256:") or len(digest) != 71:
            raise ToolkitError.bad_input(f"--digest {digest!r}: expected sha256:<64 hex digits>")
    if not request.digests and not request.records:
        raise ToolkitError.bad_input(f"nothing to merge for {text}: give --digest or --digest-dir")
    return parsed.domain, parsed.path


def _collect(client: RegistryClient, path: str, request: MergeRequest) -> tuple[list[_Entry], dict[str, str]]:
    given = [(r.digest, r.descriptor) for r in request.records] + [(d, {}) for d in request.digests]
    entries: list[_Entry] = []
    annotations: dict[str, str] = {}
    for digest, descriptor in dict(given).items():
        data = _manifest(client, path, digest)
        if data.get("manifests") is not None:
            annotations.update({str(k): str(v) for k, v in (data.get("annotations") or {}).items()})
            children = [_Entry(dict(child)) for child in data["manifests"]]
            for child in children:
                if not child.is_attestation:
                    child.labels = _config_labels(client, path, child, _manifest(client, path, child.digest))
            entries.extend(children)
        else:
            entry = _image_entry(digest, data, descriptor)
            entry.labels = _config_labels(client, path, entry, data)
            entries.append(entry)
    return entries, annotations


def _manifest(client: RegistryClient, path: str, digest: str) -> dict[str, Any]:
    manifest = client.get_manifest(path, digest)
    if manifest is None:
        raise ToolkitError.failed(f"{client.host}/{path}@{digest} not found: was it pushed to this repository?")
    data = manifest.parsed()
    data.setdefault("mediaType", manifest.media_type)
    data["_size"] = len(manifest.body)
    return data


def _image_entry(digest: str, data: Mapping[str, Any], given: Mapping[str, Any]) -> _Entry:
    descriptor: dict[str, Any] = {"mediaType": data["mediaType"], "digest": digest, "size": data["_size"]}
    if given.get("platform"):
        descriptor["platform"] = dict(given["platform"])
    annotations = {**(data.get("annotations") or {}), **(given.get("annotations") or {})}
    annotations.pop("org.opencontainers.image.ref.name", None)  # the layout's tag, not the image's
    if annotations:
        descriptor["annotations"] = annotations
    return _Entry(descriptor)


def _config_labels(client: RegistryClient, path: str, entry: _Entry, manifest: Mapping[str, Any]) -> dict[str, str]:
    """The image config's labels; fills in the descriptor's platform when it had none."""
    config_digest = str((manifest.get("config") or {}).get("digest", ""))
    if not config_digest:
        return {}
    config = client.get_blob_json(path, config_digest)
    if "platform" not in entry.descriptor and config.get("os"):
        platform = {"architecture": config.get("architecture", ""), "os": config["os"]}
        if config.get("variant"):
            platform["variant"] = config["variant"]
        entry.descriptor["platform"] = platform
    labels = (config.get("config") or {}).get("Labels") or {}
    if config.get("created"):
        labels = {CREATED: str(config["created"]), **labels}
    return {str(k): str(v) for k, v in labels.items()}


def _check_platforms(entries: Sequence[_Entry], request: MergeRequest, repo: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for entry in entries:
        if entry.is_attestation:
            continue
        key = platform_key(entry.platform)
        if not key:
            raise ToolkitError.failed(f"{repo}@{entry.descriptor['digest']}: no platform in the image config")
        if key in found:
            raise ToolkitError.failed(
                f"{repo}: two images for {key} ({found[key]} and {entry.descriptor['digest']}); nothing tagged"
            )
        found[key] = str(entry.descriptor["digest"])
    missing = [p for p in dict.fromkeys(platform_key(p) for p in request.platforms) if p not in found]
    if missing:
        have = ", ".join(sorted(found)) or "none"
        raise ToolkitError.failed(f"{repo}: {', '.join(missing)} missing from the merge (have {have}); nothing tagged")
    return dict(sorted(found.items()))


def _index(entries: Sequence[_Entry], annotations: Mapping[str, str], label_prefix: str) -> Manifest:
    images = sorted((e for e in entries if not e.is_attestation), key=lambda e: platform_key(e.platform))
    ordered = [*images, *(e for e in entries if e.is_attestation)]
    index: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [e.descriptor for e in ordered],
    }
    shared = {**annotations, **_shared_labels(images, label_prefix)}
    if shared:
        index["annotations"] = dict(sorted(shared.items()))
    body = json.dumps(index, separators=(",", ":")).encode()
    return Manifest(body, OCI_INDEX, sha256_digest(body))


def _shared_labels(images: Sequence[_Entry], label_prefix: str) -> dict[str, str]:
    """The toolkit's and OCI labels every platform image agrees on; ``created``: the newest."""
    if not images:
        return {}
    wanted = ("org.opencontainers.image.", f"{label_prefix}.")
    shared: dict[str, str] = {}
    for key, value in images[0].labels.items():
        if key.startswith(wanted) and key != CREATED and all(e.labels.get(key) == value for e in images[1:]):
            shared[key] = value
    times = [(parse_time(e.labels.get(CREATED, "")), e.labels.get(CREATED, "")) for e in images]
    known = [(when, text) for when, text in times if when is not None]
    if known:
        shared[CREATED] = max(known)[1]
    return shared
