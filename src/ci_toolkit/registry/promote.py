"""Promotion: point floating tags (``latest``) at an image already in the registry, by
copying its manifest inside the registry. No layer is pulled or pushed, an index keeps its
digest, and a floating tag never moves backwards.

The ordering guard reads the ordering key of what the tag points to now (the toolkit's
``<prefix>.build-number`` annotation or label, else ``org.opencontainers.image.created``, or
the semver of ``org.opencontainers.image.version``) and skips the promotion if ours is older.

The registry API has no compare-and-swap, so "read, compare, PUT" races with a concurrent
promoter. We narrow the window. When comparing needed more reads (an image config), a HEAD
before the PUT confirms the tag has not moved meanwhile, so each promoter's unguarded window is
one read-to-PUT round trip; when the key was in the manifest we had just read, that read is
the guard. After the PUT we read the tag back once, after a random delay scaled by our own
read-to-PUT time (about 6-12x, as long as the three reads at 0, ~3x and ~9x did before: only the
last read decides, earlier ones only cost requests), and put ours back if an older image
overwrote it, then read again. The window that remains: an older promoter that read the tag
before our PUT and whose PUT lands after our read-back (its read-to-PUT time ~10x ours, e.g. a
stalled runner) still wins, and nothing we can do inside the registry API closes that.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ci_toolkit.core.errors import EXIT_FAILED, EXIT_OK, ToolkitError
from ci_toolkit.core.refs import valid_tag
from ci_toolkit.core.report import Reporter
from ci_toolkit.core.settings import Settings
from ci_toolkit.core.units import parse_time
from ci_toolkit.registry.client import Manifest, Reference, RegistryClient, RetryPolicy, connect, parse_reference

ORDER_BY = ("auto", "build-number", "created", "semver")
CREATED = "org.opencontainers.image.created"
VERSION = "org.opencontainers.image.version"
MAX_REPAIRS = 3
# Each retry means another promoter moved the tag meanwhile: progress, so allow plenty.
MAX_REREADS = 10


@dataclass(frozen=True, kw_only=True)
class PromoteRequest:
    """One promotion. ``source`` is an immutable reference (tag or digest); ``tags`` are the
    floating tags to move; ``to_repo`` another repository of the same registry (optional)."""

    source: str
    tags: tuple[str, ...] = ("latest",)
    to_repo: str = ""
    order_by: str = "auto"
    force: bool = False
    strict: bool = False
    dry_run: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    referrers: bool = True
    """With ``to_repo``: copy what refers to the image (signatures, SBOMs) along with it."""


@dataclass(frozen=True, kw_only=True)
class TagOutcome:
    tag: str
    reference: str
    # promoted | repaired | unchanged | skipped | superseded | would-promote
    action: str
    digest: str
    previous_digest: str = ""
    detail: str = ""


@dataclass(frozen=True, kw_only=True)
class PromoteResult:
    source: str
    digest: str
    media_type: str
    order_key: str
    outcomes: tuple[TagOutcome, ...]
    requests: int
    strict: bool = False
    referrers: tuple[str, ...] = ()
    """Referrers copied into the target repository (digests; ``:tag`` for tags written)."""

    @property
    def skipped(self) -> tuple[TagOutcome, ...]:
        return tuple(o for o in self.outcomes if o.action in ("skipped", "superseded"))

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED if self.strict and self.skipped else EXIT_OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "digest": self.digest,
            "media_type": self.media_type,
            "order_key": self.order_key,
            "requests": self.requests,
            "referrers": list(self.referrers),
            "tags": [o.__dict__ for o in self.outcomes],
        }


ClientFactory = Callable[[str], RegistryClient]


def promote(
    request: PromoteRequest,
    *,
    settings: Settings,
    env: Mapping[str, str],
    reporter: Reporter,
    client_factory: ClientFactory | None = None,
) -> PromoteResult:
    """The one public entry: validate, then move each floating tag if it would not go backwards."""
    source, target = _validate(request)
    if client_factory is None:
        client = connect(source.host, settings=settings, env=env, reporter=reporter, retry=request.retry)
    else:
        client = client_factory(source.host)
    client.want_scope(source.repository, "pull")
    client.want_scope(target.repository, "pull,push")
    promoter = _Promoter(client, request, source, target, settings.label_prefix, reporter)
    return promoter.run()


def _validate(request: PromoteRequest) -> tuple[Reference, Reference]:
    if request.order_by not in ORDER_BY:
        raise ToolkitError.bad_input(f"--order-by must be one of {', '.join(ORDER_BY)}, not {request.order_by!r}")
    if not request.tags:
        raise ToolkitError.bad_input("promote needs at least one --tag")
    for tag in request.tags:
        if not valid_tag(tag):
            raise ToolkitError.bad_input(f"invalid tag {tag!r}: use letters, digits, '_', '.', '-' (max 128)")
    source = parse_reference(request.source)
    target_repo = source.repository
    if request.to_repo:
        to = request.to_repo
        if "/" in to and to.split("/", 1)[0] == source.host:
            to = to.split("/", 1)[1]
        elif "/" in to and ("." in to.split("/", 1)[0] or ":" in to.split("/", 1)[0]):
            raise ToolkitError.bad_input(f"--to {request.to_repo}: must be a repository on {source.host}")
        target_repo = parse_reference(f"{source.host}/{to}:x").repository
    if target_repo == source.repository and source.tag in request.tags and not source.digest:
        raise ToolkitError.bad_input(f"the source tag {source.tag!r} is also a tag to promote: give an immutable one")
    return source, Reference(source.host, target_repo)


@dataclass(frozen=True)
class OrderKey:
    kind: str
    value: tuple[Any, ...]
    text: str


class _Promoter:
    def __init__(
        self,
        client: RegistryClient,
        request: PromoteRequest,
        source: Reference,
        target: Reference,
        label_prefix: str,
        reporter: Reporter,
    ) -> None:
        self.client = client
        self.request = request
        self.source = source
        self.target = target
        self.build_label = f"{label_prefix}.build-number"
        self.reporter = reporter
        self._keys: dict[str, dict[str, OrderKey]] = {}
        self._copied = False
        self._rng = random.Random()

    def run(self) -> PromoteResult:
        manifest = self.client.get_manifest(self.source.repository, self.source.ref)
        if manifest is None:
            raise ToolkitError.failed(f"source image {self.source} not found")
        outcomes = tuple(self._promote_tag(tag, manifest) for tag in self.request.tags)
        copied = self._copy_referrers(manifest, outcomes)
        key = self._keys.get(manifest.digest)
        return PromoteResult(
            source=str(self.source),
            digest=manifest.digest,
            media_type=manifest.media_type,
            order_key=_describe_keys(key) if key else "",
            outcomes=outcomes,
            requests=self.client.request_count,
            strict=self.request.strict,
            referrers=tuple(copied),
        )

    def _copy_referrers(self, manifest: Manifest, outcomes: tuple[TagOutcome, ...]) -> list[str]:
        """In another repository the image's referrers are not reachable until copied too."""
        moved = any(o.action in ("promoted", "repaired", "unchanged") for o in outcomes)
        if not self.request.referrers or self.request.dry_run or not moved:
            return []
        if self.target.repository == self.source.repository:
            return []
        from ci_toolkit.registry.referrers import copy_referrers

        copied = copy_referrers(self.client, self.source.repository, self.target.repository, manifest.digest)
        for item in copied:
            self.reporter.info(f"referrer {item} copied to {self.target.repository}")
        return copied

    # ------------------------------------------------------------------ one tag
    def _promote_tag(self, tag: str, manifest: Manifest) -> TagOutcome:
        ref = self.target.with_tag(tag)
        repo = self.target.repository
        for _ in range(MAX_REREADS):
            started = time.monotonic()
            current = self.client.get_manifest(repo, tag)
            read_at = self.client.request_count
            if current is not None and current.digest == manifest.digest:
                return self._outcome(ref, "unchanged", manifest.digest, current.digest, f"{tag} already points here")
            if current is not None and not self.request.force:
                verdict = self._compare(manifest, current, repo)
                if verdict is not None:
                    return self._outcome(ref, "skipped", manifest.digest, current.digest, f"skipped: {tag} {verdict}")
            previous = current.digest if current else ""
            if self.request.dry_run:
                return self._outcome(ref, "would-promote", manifest.digest, previous, f"would point {ref} at it")
            self._copy_referenced(manifest)
            if current is not None and not self.request.force and self.client.request_count > read_at:
                # Reading the ordering keys took more round trips; confirm the tag did not move
                # meanwhile, so our unguarded window is this HEAD-to-PUT, not the whole compare.
                started = time.monotonic()
                if self.client.head_manifest(repo, tag) != previous:
                    continue
            self.client.put_manifest(repo, tag, manifest)
            return self._settle(ref, manifest, previous, time.monotonic() - started)
        raise ToolkitError.failed(f"{ref} kept moving while we compared; try again")

    def _settle(self, ref: Reference, manifest: Manifest, previous: str, gap: float) -> TagOutcome:
        """Read back after a random delay; put ours back over an older image and read again."""
        repairs = 0
        for _ in range(MAX_REREADS):
            # A racer that read the tag before our PUT writes within about its own read-to-PUT
            # time, which is about ours: look after several of those.
            time.sleep(min(self._rng.uniform(6, 12) * gap + 0.015, 5.0))
            now = self.client.head_manifest(ref.repository, ref.tag)
            if now == manifest.digest:
                action = "repaired" if repairs else "promoted"
                return self._outcome(ref, action, manifest.digest, previous, f"promoted {ref} -> {manifest.digest}")
            if now is None:
                raise ToolkitError.failed(f"{ref} vanished right after the promotion")
            theirs = self.client.get_manifest(ref.repository, now)
            if theirs is None:
                continue  # moved again between our HEAD and GET: look again
            # Only a provably older image is overwritten; an equal or unknown one, or any image
            # under --force, was written after ours on purpose and wins (no ping-pong).
            if self.request.force or self._order(manifest, theirs, ref.repository) != 1:
                return self._outcome(
                    ref, "superseded", manifest.digest, previous, f"superseded: {now} took {ref.tag} after us"
                )
            if repairs >= MAX_REPAIRS:
                break
            self.reporter.warning(f"{ref} was overwritten with an older image ({now[:19]}); putting ours back")
            self.client.put_manifest(ref.repository, ref.tag, manifest)
            repairs += 1
        raise ToolkitError.failed(f"{ref} keeps being overwritten with older images; gave up")

    def _outcome(self, ref: Reference, action: str, digest: str, previous: str, detail: str) -> TagOutcome:
        return TagOutcome(
            tag=ref.tag, reference=str(ref), action=action, digest=digest, previous_digest=previous, detail=detail
        )

    # ------------------------------------------------------------------ cross-repository
    def _copy_referenced(self, manifest: Manifest) -> None:
        """With --to: mount every blob and put every child manifest into the target repository
        first, so the registry accepts the top manifest. Nothing is downloaded."""
        if self._copied or self.target.repository == self.source.repository:
            return
        self._copy_manifest_tree(manifest, top=True)
        self._copied = True

    def _copy_manifest_tree(self, manifest: Manifest, *, top: bool) -> None:
        data = manifest.parsed()
        if manifest.is_index:
            for child in _descriptors(data, "manifests", manifest.digest):
                digest = str(child["digest"])
                if self.client.head_manifest(self.target.repository, digest) == digest:
                    continue
                sub = self.client.get_manifest(self.source.repository, digest)
                if sub is None:
                    raise ToolkitError.failed(f"{self.source} references {digest} which is missing")
                self._copy_manifest_tree(sub, top=False)
        else:
            blobs = [*_descriptors(data, "config", manifest.digest), *_descriptors(data, "layers", manifest.digest)]
            for blob in blobs:
                digest = str(blob.get("digest", ""))
                if digest and not self.client.blob_exists(self.target.repository, digest):
                    self.client.mount_blob(self.target.repository, digest, self.source.repository)
        if not top:
            self.client.put_manifest(self.target.repository, manifest.digest, manifest)

    # ------------------------------------------------------------------ ordering
    def _compare(self, ours: Manifest, theirs: Manifest, their_repo: str) -> str | None:
        """None if ours may replace theirs, else the reason it may not ("is at build 12, ...")."""
        order = self._order(ours, theirs, their_repo)
        if order is None:
            kinds = self._kinds()
            if not any(k in self._read_keys(self.source.repository, ours) for k in kinds):
                names = " or ".join(_KIND_NAMES[k] for k in kinds)
                raise ToolkitError.failed(f"{self.source} has no {names} to order by; use --force")
            self.reporter.warning(f"the tag points to {theirs.digest[:19]}, which has no ordering key; replacing it")
            return None
        kind = self._shared_kind(ours, theirs)
        if order >= 0 or kind is None:
            return None
        return f"is at {self._keys[theirs.digest][kind].text}, this is {self._keys[ours.digest][kind].text}"

    def _order(self, ours: Manifest, theirs: Manifest, their_repo: str) -> int | None:
        """-1, 0 or 1 as ours is older, as old, or newer than theirs; None if not comparable."""
        self._read_keys(self.source.repository, ours)
        self._read_keys(their_repo, theirs)
        kind = self._shared_kind(ours, theirs)
        if kind is None:
            return None
        a, b = self._keys[ours.digest][kind].value, self._keys[theirs.digest][kind].value
        return (a > b) - (a < b)

    def _shared_kind(self, ours: Manifest, theirs: Manifest) -> str | None:
        mine, other = self._keys[ours.digest], self._keys[theirs.digest]
        return next((k for k in self._kinds() if k in mine and k in other), None)

    def _kinds(self) -> tuple[str, ...]:
        return (self.request.order_by,) if self.request.order_by != "auto" else ("build-number", "created")

    def _read_keys(self, repository: str, manifest: Manifest) -> dict[str, OrderKey]:
        if manifest.digest in self._keys:
            return self._keys[manifest.digest]
        values: dict[str, str] = {}
        data = manifest.parsed()
        _merge(values, data.get("annotations"))
        # Annotations may already carry the key: then no image manifest or config is read.
        wanted = {"auto": self.build_label, "build-number": self.build_label, "created": CREATED}
        key = wanted.get(self.request.order_by, VERSION)
        image = data
        if manifest.is_index and key not in values:
            child = _first_image(data)
            if child is not None:
                sub = self.client.get_manifest(repository, child)
                image = sub.parsed() if sub else {}
                _merge(values, image.get("annotations"))
        config_digest = str(_obj(image.get("config")).get("digest", ""))
        if config_digest and key not in values:
            config = self.client.get_blob_json(repository, config_digest)
            _merge(values, _obj(config.get("config")).get("Labels"))
            if config.get("created"):
                values.setdefault(CREATED, str(config["created"]))
        keys = _keys_from(values, self.build_label)
        self._keys[manifest.digest] = keys
        return keys


_KIND_NAMES = {
    "build-number": "build-number label or annotation",
    "created": f"{CREATED} label or annotation",
    "semver": f"semver {VERSION} label or annotation",
}


def _merge(values: dict[str, str], extra: object) -> None:
    if isinstance(extra, dict):
        for key, value in extra.items():
            values.setdefault(str(key), str(value))


def _obj(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _descriptors(data: Mapping[str, Any], field: str, where: str) -> list[dict[str, Any]]:
    """The descriptors under ``field`` (one object or a list); a registry's malformed manifest
    is a failed operation, never a KeyError."""
    value = data.get(field)
    items = [] if value is None else value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("digest"), str):
            raise ToolkitError.failed(f"manifest {where} is malformed: a {field} entry has no digest")
    return items


def _first_image(index: dict[str, Any]) -> str | None:
    """The first platform image of an index, skipping buildx's attestation manifests."""
    for entry in _descriptors(index, "manifests", "the index"):
        annotations = _obj(entry.get("annotations"))
        platform = _obj(entry.get("platform"))
        if annotations.get("vnd.docker.reference.type") == "attestation-manifest" or platform.get("os") == "unknown":
            continue
        return str(entry["digest"])
    return None


def _keys_from(values: Mapping[str, str], build_label: str) -> dict[str, OrderKey]:
    keys: dict[str, OrderKey] = {}
    build = values.get(build_label, "").strip()
    if build.isascii() and build.isdigit():
        keys["build-number"] = OrderKey("build-number", (int(build),), f"build {int(build)}")
    created = parse_time(values.get(CREATED, ""))
    if created is not None:
        keys["created"] = OrderKey("created", (created,), f"created {created.isoformat()}")
    version = parse_semver(values.get(VERSION, ""))
    if version is not None:
        keys["semver"] = OrderKey("semver", version, f"version {values[VERSION].strip()}")
    return keys


def _describe_keys(keys: Mapping[str, OrderKey]) -> str:
    for kind in ("build-number", "semver", "created"):
        if kind in keys:
            return keys[kind].text
    return ""


_SEMVER = re.compile(r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


def parse_semver(text: str) -> tuple[Any, ...] | None:
    """A sortable tuple for a SemVer 2.0 version: pre-releases sort before the release."""
    m = _SEMVER.match(text.strip())
    if not m:
        return None
    major, minor, patch, pre = int(m[1]), int(m[2]), int(m[3]), m[4]
    if pre is None:
        return (major, minor, patch, 1, ())
    parts = tuple((0, int(p), "") if p.isascii() and p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (major, minor, patch, 0, parts)
