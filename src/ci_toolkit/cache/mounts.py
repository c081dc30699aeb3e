"""``RUN --mount=type=cache`` content kept across engines: found in the Dockerfile, saved
after a successful build into the cache generation being written (``<gen>/mounts/``), and
restored into a fresh engine before the next build.

BuildKit itself moves the data, so nothing reaches into the engine's storage: a helper build
mounts the same caches (same id, or the same target when the Dockerfile gave no id, so the
frontend derives the same key) and either unpacks the saved tars from a local context into
them (restore, only into an empty cache: an engine that kept its cache has the newer one) or
packs them into tars sent back with ``--output type=local`` (save). Over ``max_bytes`` in
total, the save evicts the oldest files first.

    <gen>/mounts/index.json        {"mounts": [{"key", "id", "target", "file", "size"}]}
    <gen>/mounts/m<N>.tar          one tar per mount (ownership and modes kept)
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
    """One cache mount's saved archive."""

    key: str
    file: str
    size: int


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


def restore_dockerfile(mounts: Sequence[tuple[CacheMount, str]], image: str) -> str:
    """Unpack each saved tar (context file) into its cache, when that cache is empty."""
    import shlex  # here: only a build with cache mounts writes a helper script

    flags = " ".join(_mount_flag(m, n) for n, (m, _) in enumerate(mounts))
    script = " && ".join(
        f'if [ -z "$(ls -A {shlex.quote(_where(m, n))})" ]; then tar -xf {_WORK}/in/{shlex.quote(f)} '
        f"-C {shlex.quote(_where(m, n))} && echo {_RESTORED}{n}; fi"
        for n, (m, f) in enumerate(mounts)
    )
    return (
        f"FROM {image}\nARG CI_TOOLKIT_NONCE\n"
        f"RUN {flags} --mount=type=bind,target={_WORK}/in \\\n"
        f"    echo restore $CI_TOOLKIT_NONCE && {script}\n"
    )


def save_dockerfile(mounts: Sequence[CacheMount], image: str, max_bytes: int) -> str:
    """Pack each cache into ``m<N>.tar``. Over ``max_bytes`` in total, the oldest files (by
    mtime) are evicted from the caches first: the tools these caches serve (apt, ccache,
    pip...) fetch or rebuild a missing file."""
    import shlex

    flags = " ".join(_mount_flag(m, n) for n, m in enumerate(mounts))
    dirs = " ".join(shlex.quote(_where(m, n)) for n, m in enumerate(mounts))
    evict = (
        f"find {dirs} -type f -exec stat -c '%Y %s %n' {{}} + | sort -rn "
        f"| awk -v max={max_bytes} '{{ t += $2; if (t > max) {{ sub(/^[^ ]+ [^ ]+ /, \"\"); print }} }}' "
        '| while IFS= read -r f; do rm -f -- "$f"; done'
    )
    packs = " && ".join(f"tar -cf {_WORK}/out/m{n}.tar -C {shlex.quote(_where(m, n))} ." for n, m in enumerate(mounts))
    return (
        f"FROM {image} AS pack\nARG CI_TOOLKIT_NONCE\n"
        f"RUN {flags} \\\n    echo save $CI_TOOLKIT_NONCE && mkdir -p {_WORK}/out && {evict} && {packs}\n"
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
        helper.reporter.echo_command(proc.format_argv(argv))
    proc.run(argv, lines, env=helper.env, stdin_data=dockerfile, echo=False, what="cache mount helper build")
    return lines.lines


def restore(helper: Helper, source: Path, mounts: Sequence[CacheMount]) -> int:
    """Unpack the mounts ``source`` saved that are still declared into those of the engine
    that are empty; bytes restored."""
    saved = {s.key: s for s in read_index(source)}
    todo = [(m, saved[m.key].file) for m in mounts if m.key in saved]
    if not todo:
        return 0
    lines = _run_helper(helper, restore_dockerfile(todo, helper.image), source / "mounts", "type=cacheonly")
    done = {int(m.group(1)) for line in lines if (m := re.search(rf" {_RESTORED}(\d+)$", line.rstrip()))}
    return sum(saved[m.key].size for n, (m, _) in enumerate(todo) if n in done)


def save(helper: Helper, export: Path, mounts: Sequence[CacheMount], max_bytes: int) -> int:
    """Pack the mounts into ``export/mounts``; bytes saved."""
    import tempfile

    target = export / "mounts"
    with tempfile.TemporaryDirectory(prefix="ci-toolkit-mounts-") as empty:
        _run_helper(helper, save_dockerfile(mounts, helper.image, max_bytes), Path(empty), f"type=local,dest={target}")
    entries: list[dict[str, object]] = []
    total = 0
    for n, mount in enumerate(mounts):
        path = target / f"m{n}.tar"
        size = path.stat().st_size
        total += size
        entries.append({"key": mount.key, "id": mount.id, "target": mount.target, "file": path.name, "size": size})
    _write_index(target, entries)
    return total


def carry(source: Path, export: Path) -> int:
    """No step that uses a cache mount ran: the saved mounts stay as they were (hard links)."""
    saved = read_index(source)
    if not saved:
        return 0
    target = export / "mounts"
    target.mkdir(exist_ok=True)
    for item in saved:
        os.link(source / "mounts" / item.file, target / item.file)
    os.link(source / "mounts" / INDEX, target / INDEX)
    return sum(s.size for s in saved)


def _write_index(target: Path, entries: list[dict[str, object]]) -> None:
    write_atomic(target / INDEX, json.dumps({"mounts": entries}, indent=1))


def read_index(generation: Path | None) -> tuple[Saved, ...]:
    """The mounts a generation holds; nothing for a missing or unreadable index."""
    if generation is None:
        return ()
    try:
        data = json.loads((generation / "mounts" / INDEX).read_text(encoding="utf-8"))
        items = data["mounts"]
        return tuple(
            Saved(key=str(i["key"]), file=Path(str(i["file"])).name, size=int(i["size"]))
            for i in items
            if (generation / "mounts" / Path(str(i["file"])).name).is_file()
        )
    except (OSError, ValueError, KeyError, TypeError):
        return ()
