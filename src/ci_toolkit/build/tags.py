"""Image tags, OCI labels and annotations from the git context, with docker/metadata-action's
rules and names: ``type=schedule|semver|match|edge|ref|raw|sha``, the global attributes
``enable``, ``priority``, ``prefix``, ``suffix``, the ``flavor`` (``latest=auto|true|false``,
``prefix``, ``suffix``, ``onlatest``) and the expressions ``{{branch}}``, ``{{tag}}``,
``{{sha}}``, ``{{base_ref}}``, ``{{is_default_branch}}``, ``{{date 'YYYYMMDD'}}``.

Public entry: ``compute(MetaRequest, ci, source_url=..., now=...) -> Meta``. Pure: the CI
context (``core.ci``) says which event this is; nothing is run or fetched.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ci_toolkit.core.ci import CIContext
from ci_toolkit.core.errors import ToolkitError

DEFAULT_RULES = "type=schedule\ntype=ref,event=branch\ntype=ref,event=tag\ntype=ref,event=pr"
PRIORITIES = {"schedule": 1000, "semver": 900, "match": 800, "edge": 700, "ref": 600, "raw": 200, "sha": 100}
_ATTRS = {
    "schedule": {"pattern": "nightly"},
    "semver": {"pattern": "", "value": ""},
    "match": {"pattern": "", "group": "0", "value": ""},
    "edge": {"branch": ""},
    "ref": {"event": ""},
    "raw": {"value": ""},
    "sha": {"format": "short"},
}
_COMMON = ("enable", "priority", "prefix", "suffix")
_SEMVER = re.compile(
    r"^[v=]?\s*(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
_EXPR = re.compile(r"\{\{\s*([A-Za-z_]+)((?:\s+(?:'[^']*'|[A-Za-z_]+='[^']*'))*)\s*\}\}")
_MOMENT = re.compile(r"\[[^\]]*\]|YYYY|YY|MM|M|DD|D|HH|H|mm|m|ss|s")


@dataclass(frozen=True, kw_only=True)
class Rule:
    type: str
    attrs: Mapping[str, str]

    @property
    def priority(self) -> int:
        return int(self.attrs["priority"])


@dataclass(frozen=True, kw_only=True)
class Flavor:
    latest: str = "auto"
    prefix: str = ""
    prefix_on_latest: bool = False
    suffix: str = ""
    suffix_on_latest: bool = False


@dataclass(frozen=True, kw_only=True)
class MetaRequest:
    """``images``: names to tag (``name/app`` or ``name=name/app,enable=false``), none gives
    bare tag names. ``rules``/``flavor``: metadata-action's ``tags``/``flavor`` inputs (one
    entry per line; empty rules: its defaults). ``labels``: user labels, over the generated
    ones. ``annotation_levels``: where annotations go (``manifest``, ``index``, ...)."""

    images: tuple[str, ...] = ()
    rules: str = ""
    flavor: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotation_levels: tuple[str, ...] = ("manifest",)


@dataclass(frozen=True, kw_only=True)
class Meta:
    version: str
    tag_names: tuple[str, ...]
    tags: tuple[str, ...]
    labels: Mapping[str, str]
    annotations: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "tags": list(self.tags),
            "tag-names": list(self.tag_names),
            "labels": dict(self.labels),
            "annotations": list(self.annotations),
        }


def compute(request: MetaRequest, ci: CIContext, *, source_url: str = "", now: datetime | None = None) -> Meta:
    """Tags for every image, and the OCI labels/annotations that go with them."""
    now = now or datetime.now(timezone.utc)
    flavor = parse_flavor(request.flavor)
    scope = _Scope(ci, now)
    names: list[str] = []
    latest = False
    for rule in sorted(parse_rules(request.rules), key=lambda r: -r.priority):
        if not _enabled(rule, scope):
            continue
        for value, wants_latest in _values(rule, scope):
            tag = _sanitize(flavor.prefix + scope.render(rule.attrs["prefix"]) + value)
            tag = _sanitize(tag + scope.render(rule.attrs["suffix"]) + flavor.suffix)
            if tag and tag not in names:
                names.append(tag)
            latest = latest or wants_latest
    version = names[0] if names else ""
    if flavor.latest == "true" or (flavor.latest == "auto" and latest):
        latest_tag = _latest_name(flavor)
        names += [] if latest_tag in names else [latest_tag]
        version = version or latest_tag
    images = parse_images(request.images)
    tags = tuple(f"{image}:{name}" for image in images for name in names) if images else tuple(names)
    labels = {**oci_labels(ci, version, source_url, now), **request.labels}
    annotations = tuple(f"{level}:{k}={v}" for level in request.annotation_levels for k, v in labels.items())
    return Meta(version=version, tag_names=tuple(names), tags=tags, labels=labels, annotations=annotations)


def oci_labels(ci: CIContext, version: str, source_url: str, now: datetime) -> dict[str, str]:
    """The labels metadata-action sets, from what the CI tells (no repository API here)."""
    labels: dict[str, str] = {}
    if source_url:
        labels["org.opencontainers.image.title"] = source_url.rstrip("/").rsplit("/", 1)[-1]
        labels["org.opencontainers.image.url"] = source_url
        labels["org.opencontainers.image.source"] = source_url
    if version:
        labels["org.opencontainers.image.version"] = version
    created = now.astimezone(timezone.utc).replace(microsecond=0)
    labels["org.opencontainers.image.created"] = created.isoformat().replace("+00:00", "Z")
    if ci.sha:
        labels["org.opencontainers.image.revision"] = ci.sha
    return labels


def _latest_name(flavor: Flavor) -> str:
    prefix = flavor.prefix if flavor.prefix_on_latest else ""
    suffix = flavor.suffix if flavor.suffix_on_latest else ""
    return _sanitize(f"{prefix}latest{suffix}")


# --- parsing ---------------------------------------------------------------------------


def _entries(text: str) -> list[list[str]]:
    """metadata-action's list inputs: one entry per line, each a CSV record (quotes allowed)."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    try:
        return [[cell.strip() for cell in row] for row in csv.reader(lines)]
    except csv.Error as exc:
        raise ToolkitError.bad_input(f"cannot read tag rules: {exc}") from None


def parse_rules(text: str) -> list[Rule]:
    rows = _entries(text) or _entries(DEFAULT_RULES)
    return [_rule(row) for row in rows]


def _rule(row: list[str]) -> Rule:
    pairs = [cell.partition("=") for cell in row if cell]
    kind = next((v for k, eq, v in pairs if eq and k == "type"), "raw")
    if kind not in _ATTRS:
        raise ToolkitError.bad_input(f"unknown tag rule type={kind!r}; one of: {', '.join(_ATTRS)}")
    attrs = {"enable": "true", "priority": str(PRIORITIES[kind]), "prefix": "", "suffix": "", **_ATTRS[kind]}
    if kind == "sha":
        attrs["prefix"] = "sha-"
    for key, eq, value in pairs:
        if key == "type" and eq:
            continue
        if not eq and kind == "raw":
            attrs["value"] = key  # `type=raw,foo` and a bare `foo`
        elif key in attrs:
            attrs[key] = value
        else:
            raise ToolkitError.bad_input(f"unknown attribute {key!r} for type={kind} in tag rule {','.join(row)!r}")
    if kind == "ref" and attrs["event"] not in ("branch", "tag", "pr"):
        raise ToolkitError.bad_input(f"type=ref needs event=branch, event=tag or event=pr (got {attrs['event']!r})")
    if kind == "ref" and attrs["event"] == "pr" and not any(k == "prefix" for k, _, _ in pairs):
        attrs["prefix"] = "pr-"
    if not attrs["priority"].lstrip("-").isdigit():
        raise ToolkitError.bad_input(f"priority must be a number in tag rule {','.join(row)!r}")
    if kind == "sha" and attrs["format"] not in ("short", "long"):
        raise ToolkitError.bad_input("type=sha takes format=short or format=long")
    return Rule(type=kind, attrs=attrs)


def parse_flavor(text: str) -> Flavor:
    values = {"latest": "auto", "prefix": "", "suffix": ""}
    on_latest = {"prefix": False, "suffix": False}
    for row in _entries(text):
        current = ""
        for key, eq, value in (cell.partition("=") for cell in row if cell):
            if key in values and eq:
                values[key], current = value, key
            elif key == "onlatest" and current in on_latest:
                on_latest[current] = value == "true"
            else:
                raise ToolkitError.bad_input(f"unknown flavor {key!r}: latest=, prefix=, suffix= (onlatest=)")
    if values["latest"] not in ("auto", "true", "false"):
        raise ToolkitError.bad_input(f"flavor latest={values['latest']!r}: expected auto, true or false")
    return Flavor(
        latest=values["latest"],
        prefix=values["prefix"],
        prefix_on_latest=on_latest["prefix"],
        suffix=values["suffix"],
        suffix_on_latest=on_latest["suffix"],
    )


def parse_images(images: Sequence[str]) -> list[str]:
    out: list[str] = []
    for row in _entries("\n".join(images)):
        attrs = {"name": "", "enable": "true"}
        for key, eq, value in (cell.partition("=") for cell in row if cell):
            if not eq:
                attrs["name"] = key
            elif key in attrs:
                attrs[key] = value
            else:
                raise ToolkitError.bad_input(f"unknown image attribute {key!r} (name=, enable=)")
        if attrs["enable"] == "true" and attrs["name"]:
            out.append(attrs["name"].lower())
    return out


# --- evaluation ------------------------------------------------------------------------


class _Scope:
    """The expressions a rule's value/prefix/suffix/enable may use, bound to one CI context."""

    def __init__(self, ci: CIContext, now: datetime) -> None:
        self.ci, self.now = ci, now
        is_default = bool(ci.default_branch) and ci.event == "branch" and ci.branch == ci.default_branch
        self.values = {
            "branch": ci.branch if ci.event != "tag" else "",
            "tag": ci.tag,
            "sha": ci.sha[:7],
            "base_ref": ci.base_ref,
            "is_default_branch": str(is_default).lower(),
            "is_not_default_branch": str(not is_default).lower(),
        }

    def render(self, text: str, extra: Mapping[str, str] | None = None) -> str:
        values = {**self.values, **(extra or {})}

        def one(m: re.Match[str]) -> str:
            name, args = m.group(1), m.group(2)
            if name == "date":
                return _date(args, self.now)
            if name not in values:
                raise ToolkitError.bad_input(f"unknown expression {m.group(0)!r} in tag rules")
            return values[name]

        return _EXPR.sub(one, text)


def _enabled(rule: Rule, scope: _Scope) -> bool:
    value = scope.render(rule.attrs["enable"]).strip().lower()
    if value not in ("true", "false"):
        raise ToolkitError.bad_input(f"enable= must be true or false, got {value!r}")
    return value == "true"


def _values(rule: Rule, scope: _Scope) -> list[tuple[str, bool]]:
    """The tag values one rule gives for this event, each with whether it asks for latest."""
    handler: Callable[[Mapping[str, str], _Scope], list[tuple[str, bool]]] = _HANDLERS[rule.type]
    return handler(rule.attrs, scope)


def _schedule(attrs: Mapping[str, str], scope: _Scope) -> list[tuple[str, bool]]:
    return [(scope.render(attrs["pattern"]), False)] if scope.ci.event == "schedule" else []


def _semver(attrs: Mapping[str, str], scope: _Scope) -> list[tuple[str, bool]]:
    raw = scope.render(attrs["value"]) if attrs["value"] else (scope.ci.tag if scope.ci.event == "tag" else "")
    m = _SEMVER.match(raw.strip())
    if not m or not attrs["pattern"]:
        return []
    major, minor, patch, pre = m.group(1), m.group(2), m.group(3), m.group(4)
    version = f"{major}.{minor}.{patch}" + (f"-{pre}" if pre else "")
    parts = {"raw": raw, "version": version, "major": major, "minor": minor, "patch": patch}
    # A pre-release only ever gives {{version}} (or {{raw}}): it must not move 1.2 or 1.
    pattern = attrs["pattern"]
    if pre and "{{raw}}" not in pattern.replace(" ", ""):
        pattern = "{{version}}"
    return [(scope.render(pattern, parts), not pre)]


def _match(attrs: Mapping[str, str], scope: _Scope) -> list[tuple[str, bool]]:
    raw = scope.render(attrs["value"]) if attrs["value"] else (scope.ci.tag if scope.ci.event == "tag" else "")
    if not raw or not attrs["pattern"]:
        return []
    try:
        m = re.search(attrs["pattern"], raw)
        value = m.group(int(attrs["group"])) if m else None
    except (re.error, IndexError, ValueError) as exc:
        raise ToolkitError.bad_input(f"type=match pattern={attrs['pattern']!r}: {exc}") from None
    return [(value, True)] if value else []


def _edge(attrs: Mapping[str, str], scope: _Scope) -> list[tuple[str, bool]]:
    branch = attrs["branch"] or scope.ci.default_branch
    return [("edge", False)] if scope.ci.event == "branch" and branch and scope.ci.branch == branch else []


def _ref(attrs: Mapping[str, str], scope: _Scope) -> list[tuple[str, bool]]:
    ci, event = scope.ci, attrs["event"]
    if event != ci.event:
        return []
    value = {"branch": ci.branch, "tag": ci.tag, "pr": ci.pr_number}[event]
    return [(value, event == "tag")] if value else []


def _raw(attrs: Mapping[str, str], scope: _Scope) -> list[tuple[str, bool]]:
    value = scope.render(attrs["value"])
    return [(value, False)] if value else []


def _sha(attrs: Mapping[str, str], scope: _Scope) -> list[tuple[str, bool]]:
    sha = scope.ci.sha
    return [(sha if attrs["format"] == "long" else sha[:7], False)] if sha else []


_HANDLERS = {
    "schedule": _schedule,
    "semver": _semver,
    "match": _match,
    "edge": _edge,
    "ref": _ref,
    "raw": _raw,
    "sha": _sha,
}


def _sanitize(tag: str) -> str:
    """A valid Docker tag: runs of other characters become ``-`` (``my/branch`` -> ``my-branch``)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", tag)
    return cleaned.lstrip(".-")[:128]


def _date(args: str, now: datetime) -> str:
    """``{{date 'YYYYMMDD' tz='Asia/Tokyo'}}``: moment.js tokens, UTC unless ``tz`` is given."""
    fmt = next(iter(re.findall(r"(?<![=\w])'([^']*)'", args)), "YYYYMMDD")
    tz = dict(re.findall(r"([A-Za-z_]+)='([^']*)'", args)).get("tz", "")
    when = now.astimezone(timezone.utc)
    if tz:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            when = now.astimezone(ZoneInfo(tz))
        except (ZoneInfoNotFoundError, ValueError):
            raise ToolkitError.bad_input(f"unknown time zone tz={tz!r}") from None
    tokens = {
        "YYYY": f"{when.year:04d}",
        "YY": f"{when.year % 100:02d}",
        "MM": f"{when.month:02d}",
        "M": str(when.month),
        "DD": f"{when.day:02d}",
        "D": str(when.day),
        "HH": f"{when.hour:02d}",
        "H": str(when.hour),
        "mm": f"{when.minute:02d}",
        "m": str(when.minute),
        "ss": f"{when.second:02d}",
        "s": str(when.second),
    }
    return _MOMENT.sub(lambda m: m.group(0)[1:-1] if m.group(0).startswith("[") else tokens[m.group(0)], fmt)
