"""``RUN --mount=type=cache`` content kept across engines: found in the Dockerfile, saved
after a successful build into the cache generation being written (``<gen>/mounts/``), and
restored into a fresh engine before the next build.

BuildKit itself moves the data, so nothing reaches into the engine's storage: a helper build
mounts the same caches (same id, or the same target when the Dockerfile gave no id, so the
frontend derives the same key) and either unpacks the saved tars from a local context into
them (restore, only into an empty cache: an engine that kept its cache has the newer one) or
packs them into tars sent back with ``--output type=local`` (save). Over ``max_bytes`` in
total, the save evicts the oldest files first.

A save after a restore sends back only what changed: the helper gets the previous listing of
each mount (mtime, size, path of every file) and packs the new and changed files into a
delta (cpio, files only: a directory it creates gets default modes); the generation then
holds the previous parts as hard links plus that delta, and the new listing, so a restore
unpacks the parts in order and deletes what the listing no longer has. A mount whose files
are all unchanged adds nothing. Once a mount's deltas would pass half its base (or
``_MAX_PARTS``), or the total would pass ``max_bytes``, the save packs it whole again.

    <gen>/mounts/index.json        {"mounts": [{"key", "id", "target", "file", "parts", "list", "size"}]}
    <gen>/mounts/m<N>.tar          one tar per mount (ownership and modes kept): the base;
                                   m<N>.cpio where files its tool regenerates are left out
    <gen>/mounts/m<N>.p<I>.*       the parts of a mount carried from the previous generation
    <gen>/mounts/m<N>.list         its files as ``mtime size path`` lines
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ci_toolkit.core import proc
from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.files import write_atomic
from ci_toolkit.core.report import Reporter

INDEX = "index.json"
_WORK = "/ci-toolkit-mounts"
_OPTIONS = ("sharing", "uid", "gid", "mode")
_RESTORED = "ci-toolkit-restored-m"
_MAX_PARTS = 8
# Files their tool rebuilds from the rest and rewrites on every run: kept, each would put its
# whole size into every delta (apt's binary caches: ~90 MB with Debian's main lists).
_REGENERATED = {"/var/cache/apt": ("./pkgcache.bin", "./srcpkgcache.bin")}
# Lines "mtime size path" (stat -c) with the first two fields cut, in the helpers' awk.
_PATH_ONLY = 'sub(/^[^ ]+ [^ ]+ /, "")'


@dataclass(frozen=True, kw_only=True)
class CacheMount:
    """One cache mount as the Dockerfile declares it."""

    id: str
    """The id given in the Dockerfile; empty when the frontend derives it from the target."""
    target: str
    options: Mapping[str, str]
    """sharing, uid, gid, mode: what the helper repeats so the cache is created alike."""

    @property
    def key(self) -> str:
        """What names this cache in the engine (id, else target)."""
        return self.id or self.target


@dataclass(frozen=True, kw_only=True)
class Saved:
    """One cache mount's saved archive: a base tar and its deltas."""

    key: str
    file: str
    size: int
    """Bytes stored: every part."""
    parts: tuple[str, ...] = ()
    """The base tar, then the deltas, unpacked in this order (``(file,)`` for older entries)."""
    listing: str = ""
    """The file list of the content the parts add up to; empty for older entries."""


# --- finding mounts -----------------------------------------------------------------------


def find(dockerfile: str) -> tuple[CacheMount, ...]:
    """The cache mounts of every RUN instruction, first declaration of each key kept. Mounts
    whose options use variables, ``from=`` (BuildKit keys those by the source image too) or
    a relative target cannot be matched by a helper and are left out."""
    found: dict[str, CacheMount] = {}
    for instruction in _instructions(dockerfile):
        for value in _mount_flags(instruction):
            mount = _cache_mount(value)
            if mount is not None:
                found.setdefault(mount.key, mount)
    return tuple(found.values())


def select(mounts: Sequence[CacheMount], setting: Sequence[str]) -> tuple[CacheMount, ...]:
    """``auto`` (all), ``none``, or the ids/targets listed."""
    wanted = [s.strip() for s in setting if s.strip()]
    if not wanted or wanted == ["auto"]:
        return tuple(mounts)
    if wanted == ["none"]:
        return ()
    if "auto" in wanted or "none" in wanted:
        raise ToolkitError.bad_input("cache-mounts: give auto, none, or a list of mount ids, not a mix")
    return tuple(m for m in mounts if m.key in wanted or m.target in wanted)


def _instructions(text: str) -> list[str]:
    """Logical lines: continuations joined, comments and heredoc bodies dropped."""
    escape = "\\"
    lines = text.splitlines()
    for line in lines[:5]:
        directive = line.strip().lower().replace(" ", "")
        if directive.startswith("#escape="):
            escape = directive[-1]
    out: list[str] = []
    current = ""
    heredoc = ""
    for line in lines:
        if heredoc:
            heredoc = "" if line.strip() == heredoc else heredoc
            continue
        if not current and line.lstrip().startswith("#"):
            continue
        stripped = line.rstrip()
        if stripped.endswith(escape):
            current += stripped[:-1] + " "
            continue
        current += line
        heredoc = _heredoc_end(current)
        out.append(current.strip())
        current = ""
    if current.strip():
        out.append(current.strip())
    return out


def _heredoc_end(instruction: str) -> str:
    words = instruction.split()
    for word in words[1:]:
        if word.startswith("<<") and len(word) > 2:
            return word[2:].lstrip("-").strip("'\"")
    return ""


def _mount_flags(instruction: str) -> list[str]:
    words = instruction.split()
    if not words or words[0].upper() != "RUN":
        return []
    values = []
    for word in words[1:]:
        if not word.startswith("--"):
            break
        if word.startswith("--mount="):
            values.append(word.removeprefix("--mount="))
    return values


def _cache_mount(value: str) -> CacheMount | None:
    import csv  # lazily, like tempfile: most Dockerfiles have no RUN --mount

    try:
        fields = next(csv.reader([value]))
    except (csv.Error, StopIteration):
        return None
    spec: dict[str, str] = {}
    for item in fields:
        name, _, val = item.partition("=")
        spec[name.strip().lower()] = val.strip()
    target = spec.get("target") or spec.get("dst") or spec.get("destination") or ""
    if spec.get("type") != "cache" or not target.startswith("/") or "from" in spec or "$" in value:
        return None
    options = {k: spec[k] for k in _OPTIONS if spec.get(k)}
    return CacheMount(id=spec.get("id", ""), target=target, options=options)


# --- the helper builds --------------------------------------------------------------------


def _mount_flag(mount: CacheMount, n: int) -> str:
    # No id: repeat the target, so the frontend derives the very key the Dockerfile gets.
    parts = ["type=cache", f"target={mount.target}" if not mount.id else f"id={mount.id},target={_WORK}/m{n}"]
    parts += [f"{k}={v}" for k, v in mount.options.items()]
    return "--mount=" + ",".join(parts)


def _where(mount: CacheMount, n: int) -> str:
    return mount.target if not mount.id else f"{_WORK}/m{n}"


def _unpack(mount: CacheMount, n: int, saved: Saved) -> str:
    import shlex  # here: only a build with cache mounts writes a helper script

    where = shlex.quote(_where(mount, n))
    steps = [
        f"tar -xf {_WORK}/in/{shlex.quote(part)} -C {where}"
        if part.endswith(".tar")
        else f"(cd {where} && cpio -idmu < {_WORK}/in/{shlex.quote(part)} 2>/dev/null)"
        for part in saved.parts
    ]
    if len(saved.parts) > 1 and saved.listing:
        # Files a delta's listing no longer has were deleted or evicted after the base.
        steps.append(
            f"(cd {where} && find . ! -type d | awk 'NR == FNR {{ {_PATH_ONLY}; keep[$0] = 1; next }} "
            f"!($0 in keep)' {_WORK}/in/{shlex.quote(saved.listing)} - "
            '| while IFS= read -r f; do rm -f -- "$f"; done)'
        )
    return " && ".join(steps)


def restore_dockerfile(mounts: Sequence[tuple[CacheMount, Saved]], image: str) -> str:
    """Unpack each saved mount (context files) into its cache, when that cache is empty."""
    import shlex

    flags = " ".join(_mount_flag(m, n) for n, (m, _) in enumerate(mounts))
    script = " && ".join(
        f'if [ -z "$(ls -A {shlex.quote(_where(m, n))})" ]; then {_unpack(m, n, saved)} && echo {_RESTORED}{n}; fi'
        for n, (m, saved) in enumerate(mounts)
    )
    return (
        f"FROM {image}\nARG CI_TOOLKIT_NONCE\n"
        f"RUN {flags} --mount=type=bind,target={_WORK}/in \\\n"
        f"    echo restore $CI_TOOLKIT_NONCE && {script}\n"
    )


def _pack(mount: CacheMount, n: int, budget: int | None) -> str:
    """List the mount; pack it whole, or (with a previous listing and a budget the changed
    files fit in) pack only the new and changed files."""
    import shlex

    where, out, listing = shlex.quote(_where(mount, n)), f"{_WORK}/out/m{n}", f"{_WORK}/in/m{n}.list"
    keep = " && ".join(f'p != "{name}"' for name in _REGENERATED.get(mount.target.rstrip("/"), ()))
    lists = f"(cd {where} && find . ! -type d -exec stat -c '%Y %s %n' {{}} + | sort > {out}.list)"
    whole = f"tar -cf {out}.tar -C {where} ."
    if keep:
        lists = lists.replace(" > ", f" | awk '{{ p = $0; sub(/^[^ ]+ [^ ]+ /, \"\", p) }} {keep}' > ", 1)
        whole = (
            f"(cd {where} && find . -mindepth 1 | awk '{{ p = $0 }} {keep}' | cpio -o -H newc > {out}.cpio 2>/dev/null)"
        )
    if budget is None:
        return f"{lists} && {whole}"
    changed = "awk 'NR == FNR { seen[$0] = 1; next } !($0 in seen) { t += $2 } END { printf \"%.0f\", t }'"
    delta = (
        f"(cd {where} && awk 'NR == FNR {{ seen[$0] = 1; next }} !($0 in seen) {{ {_PATH_ONLY}; print }}' "
        f"{listing} {out}.list | cpio -o -H newc > {out}.delta 2>/dev/null)"
    )
    return f'{lists} && if [ "$({changed} {listing} {out}.list)" -le {budget} ]; then {delta}; else {whole}; fi'


def save_dockerfile(mounts: Sequence[CacheMount], image: str, max_bytes: int,
                    budgets: Sequence[int | None] = ()) -> str:  # fmt: skip
    """Pack each cache into ``m<N>.tar`` (``m<N>.cpio`` without the files in _REGENERATED) or,
    where ``budgets`` gives a byte budget and the context holds the previous ``m<N>.list``, a
    delta ``m<N>.delta`` (cpio) when the changes fit.
    Over ``max_bytes`` in total, the oldest files (by mtime) are evicted from the caches first:
    the tools these caches serve (apt, ccache, pip...) fetch or rebuild a missing file."""
    import shlex

    budgets = list(budgets) or [None] * len(mounts)
    flags = " ".join(_mount_flag(m, n) for n, m in enumerate(mounts))
    dirs = " ".join(shlex.quote(_where(m, n)) for n, m in enumerate(mounts))
    evict = (
        f"find {dirs} -type f -exec stat -c '%Y %s %n' {{}} + | sort -rn "
        f"| awk -v max={max_bytes} '{{ t += $2; if (t > max) {{ {_PATH_ONLY}; print }} }}' "
        '| while IFS= read -r f; do rm -f -- "$f"; done'
    )
    packs = " && ".join(_pack(m, n, budgets[n]) for n, m in enumerate(mounts))
    return (
        f"FROM {image} AS pack\nARG CI_TOOLKIT_NONCE\n"
        f"RUN {flags} --mount=type=bind,target={_WORK}/in \\\n"
        f"    echo save $CI_TOOLKIT_NONCE && mkdir -p {_WORK}/out && {evict} && {packs}\n"
        f"FROM scratch\nCOPY --from=pack {_WORK}/out/ /\n"
    )


@dataclass(frozen=True, kw_only=True)
class Helper:
    """How to run a helper build: the same builder and environment as the build itself."""

    image: str
    builder: str
    env: Mapping[str, str]
    reporter: Reporter
    build_args: Mapping[str, str]
    """BUILDKIT_CACHE_MOUNT_NS and the like: they change the keys the frontend derives."""


@dataclass
class _Lines(Reporter):
    """Keeps the helper's output (shown only with --verbose): restore reads what it did."""

    lines: list[str] = field(default_factory=list)

    def passthrough(self, text: str) -> None:
        self.lines.append(text)
        if self.verbose:
            super().passthrough(text)


def _run_helper(helper: Helper, dockerfile: str, context: Path, output: str) -> list[str]:
    argv = ["docker", "buildx", "build"]
    if helper.builder:
        argv += ["--builder", helper.builder]
    argv += ["--progress", "plain", "--file", "-", "--build-arg", f"CI_TOOLKIT_NONCE={os.urandom(8).hex()}"]
    for name, value in helper.build_args.items():
        if name.startswith("BUILDKIT_"):
            argv += ["--build-arg", f"{name}={value}"]
    argv += ["--output", output, str(context)]
    lines = _Lines(masker=helper.reporter.masker, verbose=helper.reporter.verbose, stream=helper.reporter.stream)
    if helper.reporter.verbose:
        helper.reporter.echo_command(argv)
    proc.run(argv, lines, env=helper.env, stdin_data=dockerfile, echo=False, what="cache mount helper build")
    return lines.lines


def restore(helper: Helper, source: Path, mounts: Sequence[CacheMount]) -> int:
    """Unpack the mounts ``source`` saved that are still declared into those of the engine
    that are empty; bytes restored."""
    saved = {s.key: s for s in read_index(source)}
    todo = [(m, saved[m.key]) for m in mounts if m.key in saved]
    if not todo:
        return 0
    lines = _run_helper(helper, restore_dockerfile(todo, helper.image), source / "mounts", "type=cacheonly")
    done = {int(m.group(1)) for line in lines if (m := re.search(rf" {_RESTORED}(\d+)$", line.rstrip()))}
    return sum(saved[m.key].size for n, (m, _) in enumerate(todo) if n in done)


def save(helper: Helper, export: Path, mounts: Sequence[CacheMount], max_bytes: int,
         source: Path | None = None) -> tuple[int, bool]:  # fmt: skip
    """Pack the mounts into ``export/mounts``, as deltas on what ``source`` saved where they
    fit; bytes stored, and whether any content changed."""
    import tempfile

    target = export / "mounts"
    previous = {s.key: s for s in read_index(source) if s.listing} if source is not None else {}
    with tempfile.TemporaryDirectory(prefix="ci-toolkit-mounts-") as context:
        budgets = _budgets(mounts, previous, max_bytes, Path(context), source)
        dockerfile = save_dockerfile(mounts, helper.image, max_bytes, budgets)
        _run_helper(helper, dockerfile, Path(context), f"type=local,dest={target}")
    entries: list[dict[str, object]] = []
    changed = False
    for n, mount in enumerate(mounts):
        parts, new = _settle(target, n, previous.get(mount.key), source)
        changed = changed or new
        size = sum((target / part).stat().st_size for part in parts)
        entries.append({"key": mount.key, "id": mount.id, "target": mount.target, "file": parts[0],
                        "parts": parts, "list": f"m{n}.list", "size": size})  # fmt: skip
    _write_index(target, entries)
    return sum(int(str(e["size"])) for e in entries), changed


def _budgets(mounts: Sequence[CacheMount], previous: Mapping[str, Saved], max_bytes: int, context: Path,
             source: Path | None) -> list[int | None]:  # fmt: skip
    """Per mount, how many bytes of changed files a delta may hold (None: pack it whole),
    with the previous listing put in the helper's context as ``m<N>.list``."""
    headroom = max(max_bytes - sum(s.size for s in previous.values()), 0) // max(len(mounts), 1)
    budgets: list[int | None] = []
    for n, mount in enumerate(mounts):
        saved = previous.get(mount.key)
        if source is None or saved is None or len(saved.parts) >= _MAX_PARTS:
            budgets.append(None)
            continue
        base = (source / "mounts" / saved.parts[0]).stat().st_size
        budgets.append(max(min(base // 2 - (saved.size - base), headroom), 0))
        # A copy: the context is a temporary directory, maybe on another filesystem.
        (context / f"m{n}.list").write_bytes((source / "mounts" / saved.listing).read_bytes())
    return budgets


def _settle(target: Path, n: int, previous: Saved | None, source: Path | None) -> tuple[list[str], bool]:
    """The parts of mount ``n`` after the helper: its whole tar, or the previous parts (linked)
    plus its delta; and whether its content changed."""
    delta = target / f"m{n}.delta"
    if previous is None or source is None or not delta.is_file():
        return [f"m{n}.tar" if (target / f"m{n}.tar").is_file() else f"m{n}.cpio"], True
    parts = []
    for i, part in enumerate(previous.parts):
        name = f"m{n}.p{i}{Path(part).suffix}"
        os.link(source / "mounts" / part, target / name)
        parts.append(name)
    if (source / "mounts" / previous.listing).read_bytes() == (target / f"m{n}.list").read_bytes():
        delta.unlink()
        return parts, False
    name = f"m{n}.p{len(parts)}.cpio"
    delta.rename(target / name)
    return [*parts, name], True


def carry(source: Path, export: Path) -> int:
    """No step that uses a cache mount ran: the saved mounts stay as they were (hard links)."""
    saved = read_index(source)
    if not saved:
        return 0
    target = export / "mounts"
    target.mkdir(exist_ok=True)
    for item in saved:
        for name in (*item.parts, *([item.listing] if item.listing else [])):
            os.link(source / "mounts" / name, target / name)
    os.link(source / "mounts" / INDEX, target / INDEX)
    return sum(s.size for s in saved)


def _write_index(target: Path, entries: list[dict[str, object]]) -> None:
    write_atomic(target / INDEX, json.dumps({"mounts": entries}, indent=1))


def read_index(generation: Path | None) -> tuple[Saved, ...]:
    """The mounts a generation holds (those with every part present); nothing for a missing
    or unreadable index."""
    if generation is None:
        return ()
    try:
        data = json.loads((generation / "mounts" / INDEX).read_text(encoding="utf-8"))
        found = [_saved(generation / "mounts", item) for item in data["mounts"]]
    except (OSError, ValueError, KeyError, TypeError):
        return ()
    return tuple(s for s in found if s is not None)


def _saved(where: Path, item: Mapping[str, object]) -> Saved | None:
    file = Path(str(item["file"])).name
    parts_field = item.get("parts")
    parts = tuple(Path(str(p)).name for p in parts_field) if isinstance(parts_field, list) and parts_field else (file,)
    if not all((where / part).is_file() for part in parts):
        return None
    listing = Path(str(item.get("list") or "")).name
    listing = listing if listing and (where / listing).is_file() else ""
    return Saved(key=str(item["key"]), file=parts[0], size=int(str(item["size"])), parts=parts, listing=listing)
