"""Which cache a build uses: the backend's ``--cache-from``/``--cache-to`` values, and the
seed's raw ``type=local`` pair recognised in extra args and turned into a managed entry."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ci_toolkit.cache import last_build, store
from ci_toolkit.cache.keys import key_dirname
from ci_toolkit.core.config import default_cache_root
from ci_toolkit.core.errors import ToolkitError

BACKENDS = ("local", "registry", "gha", "none")
COMPRESSIONS = ("zstd", "gzip", "uncompressed")
MAX_LEVELS = {"gzip": 9, "zstd": 22}
"""gzip stops at 9: Go's gzip refuses higher levels, so the export would fail after the build."""
DEFAULT_LEVELS = {"zstd": 3}
"""Level 0 (the setting's default) means these; a compression not listed: BuildKit's default.
zstd 3: chosen by B5 (benchmarks/bench_warm.py holds the table): BuildKit maps zstd levels onto
encoder speeds (1-2 fastest, 3-5 default, 6 and up better; 19 wrote the same bytes as 9). Better
made the cache 10% smaller but no warm build measurably faster, and its export cost about 4x
default's; fastest exported faster but made 5% more bytes to stream. Pinned, not left to
BuildKit, so a BuildKit upgrade does not change it unmeasured."""
_CACHE_FLAGS = ("--cache-to", "--cache-from")
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class CachePlan:
    """Which cache backend a build uses, under which key, and the buildx flags for it."""

    backend: str
    key: str
    entry: Path | None = None
    """The local store entry (``local`` backend or the recognised raw pair)."""
    to_options: Mapping[str, str] = field(default_factory=dict)
    """Extra ``--cache-to`` options for a local entry (mode, compression...)."""
    cache_from: tuple[str, ...] = ()
    cache_to: tuple[str, ...] = ()
    notice: str = ""
    warning: str = ""
    extra_args: tuple[str, ...] = ()
    """Extra args with a recognised pair removed."""


def resolve_root(value: str, env: Mapping[str, str], cwd: Path) -> Path:
    """The cache root a build or ``cache`` command uses: the setting, else the default."""
    if "\0" in value:
        raise ToolkitError.bad_input("cache root contains a NUL character")
    if not value:
        return default_cache_root(env)
    try:
        path = Path(value).expanduser()
    except RuntimeError as exc:  # ~name of a user that does not exist
        raise ToolkitError.bad_input(f"cache root {value!r}: {exc}") from exc
    return path if path.is_absolute() else cwd / path


def plan_cache(
    *,
    backend: str,
    key: str,
    root: Path,
    ref: str,
    extra_args: Sequence[str],
    cwd: Path,
    home: Path | None = None,
    compression: str = "zstd",
    compression_level: int = 0,
    env: Mapping[str, str] | None = None,
) -> CachePlan:
    """Decide the cache for one build. Creates nothing. ``compression`` (and a level, 0:
    BuildKit's default) applies to the exports the toolkit writes; a ``compression=`` the
    user put in their own ``--cache-to`` wins. ``env``: the job's (gha's runtime variables)."""
    if backend not in BACKENDS:
        raise ToolkitError.bad_input(f"unknown cache backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    packing = _compression_options(compression, compression_level)
    found = _cache_flags(extra_args)
    pair = _local_pair(found)
    if pair is not None:
        dest, options = pair
        entry = Path(os.path.normpath(dest if dest.is_absolute() else cwd / dest))
        refused = unmanageable(entry, root, home)
        if refused:
            warning = f"not managing {entry} as a cache store entry ({refused}); the raw type=local pair goes to buildx"
            return CachePlan("extra-args", key, extra_args=tuple(extra_args), warning=warning + " unchanged")
        rest = _without_flags(extra_args)
        notice = f"managing {entry} as a cache store entry (atomic swap, bounded size) for the raw type=local pair"
        if "compression" not in options:
            options = {**options, **packing}
        return CachePlan("local", entry.name or key, entry, options, extra_args=rest, notice=notice)
    if found:
        # The user set the cache themselves: theirs alone, unchanged, or exports would double.
        return CachePlan("extra-args", key, extra_args=tuple(extra_args))
    if backend == "local":
        options = {"mode": "max", **packing}
        return CachePlan("local", key, root / key_dirname(key), options, extra_args=tuple(extra_args))
    packed = "".join(f",{k}={v}" for k, v in packing.items())
    if backend == "registry":
        full = f"{_check_ref(ref)}:{registry_tag(key)}"
        return CachePlan(
            "registry",
            key,
            cache_from=(f"type=registry,ref={full}",),
            cache_to=(f"type=registry,ref={full},mode=max,image-manifest=true,oci-mediatypes=true{packed}",),
            extra_args=tuple(extra_args),
        )
    if backend == "gha":
        scope = registry_tag(key).removeprefix("cache-")
        return CachePlan(
            "gha",
            key,
            cache_from=(f"type=gha,scope={scope}",),
            cache_to=(f"type=gha,scope={scope},mode=max{packed}",),
            warning=_gha_runtime_missing(env or {}),
            extra_args=tuple(extra_args),
        )
    return CachePlan("none", key, extra_args=tuple(extra_args))


# Directories a cache entry never is, even empty: cleanup removes what it does not know there.
SYSTEM_DIRS = frozenset(
    {
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/media",
        "/mnt",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/srv",
        "/sys",
        "/tmp",
        "/usr",
        "/usr/bin",
        "/usr/lib",
        "/usr/local",
        "/usr/sbin",
        "/usr/share",
        "/var",
        "/var/cache",
        "/var/lib",
        "/var/log",
        "/var/tmp",
    }
)
_SYSTEM_TREES = ("/proc/", "/sys/", "/dev/", "/etc/", "/boot/", "/usr/", "/bin/", "/sbin/", "/lib/")
# What a toolkit entry holds, and what a raw `--cache-to type=local` export writes (migrated).
ENTRY_NAMES = frozenset({"current", "lock", "key", last_build.NAME}) | frozenset(store.LEGACY_FILES)
ENTRY_PREFIXES = ("gen-", "tmp-", "del-", "current.new-", "key.", ".key.", f".{last_build.NAME}.")


def unmanageable(entry: Path, root: Path, home: Path | None) -> str:
    """Why ``entry`` must not be managed as a store entry, or "" if it may: the store renames,
    reaps and deletes inside an entry, so only a directory that is missing, empty, or already
    holds nothing but an entry's (or a raw cache export's) files qualifies, and never ``/``,
    the home directory, the cache root or a directory above it, or a system directory."""
    resolved = entry.resolve()
    if entry.is_symlink():
        return "it is a symlink"
    root, home = root.resolve(), home.resolve() if home else None
    protected = {Path("/"), root, *root.parents, *((home, *home.parents) if home else ())}
    if str(resolved) in SYSTEM_DIRS or resolved.as_posix().startswith(_SYSTEM_TREES) or resolved in protected:
        return "a system, home or cache root directory"
    if not resolved.exists():
        return ""
    if not resolved.is_dir():
        return "it is not a directory"
    strays = [c.name for c in resolved.iterdir() if c.name not in ENTRY_NAMES and not c.name.startswith(ENTRY_PREFIXES)]
    if strays:
        return f"it is not empty and not a toolkit cache entry: it holds {strays[0]!r}"
    return ""


def _compression_options(compression: str, level: int) -> dict[str, str]:
    # zstd: B5 (benchmarks/bench_warm.py) measured warm imports after an engine wipe faster
    # than with gzip; BuildKit reads either, so a store written with gzip stays usable.
    if compression not in COMPRESSIONS:
        raise ToolkitError.bad_input(
            f"unknown cache compression {compression!r}; choose one of {', '.join(COMPRESSIONS)}"
        )
    top = MAX_LEVELS.get(compression, 22)
    if level < 0 or level > top:
        raise ToolkitError.bad_input(
            f"cache compression level {level} is out of range for {compression} (0: default, 1-{top})"
        )
    # force-compression: without it BuildKit exports the gzip blobs the image export already
    # made (B5 measured zstd-requested caches byte-identical to gzip ones).
    options = {"compression": compression, "force-compression": "true"}
    level = level or DEFAULT_LEVELS.get(compression, 0)
    if level and compression != "uncompressed":
        options["compression-level"] = str(level)
    return options


def local_args(plan: CachePlan, source: Path | None, export: Path) -> tuple[list[str], list[str]]:
    """``--cache-from``/``--cache-to`` values for a local entry's session."""
    options = {k: v for k, v in plan.to_options.items() if k not in ("type", "dest")}
    to = ",".join([f"type=local,dest={export}", *(f"{k}={v}" for k, v in options.items())])
    return ([f"type=local,src={source}"] if source is not None else []), [to]


def _gha_runtime_missing(env: Mapping[str, str]) -> str:
    """buildx fills type=gha's token and url from these variables and, without them, drops
    the cache silently: say so once instead of a build that quietly never caches."""
    if env.get("ACTIONS_RUNTIME_TOKEN") and (env.get("ACTIONS_RESULTS_URL") or env.get("ACTIONS_CACHE_URL")):
        return ""
    return (
        "cache-backend gha: ACTIONS_RUNTIME_TOKEN and ACTIONS_RESULTS_URL/ACTIONS_CACHE_URL are not all set, so "
        "buildx uses no cache; the ci-toolkit action exposes them on GitHub (a run: step needs "
        "crazy-max/ghaction-github-runtime before it); elsewhere use cache-backend local or registry"
    )


def registry_tag(key: str) -> str:
    """``cache-<key>`` as a valid tag; a hash keeps sanitised keys apart."""
    safe = _TAG_UNSAFE.sub("-", key).strip("-.")
    if safe == key and len(key) <= 100:
        return f"cache-{key}"
    import hashlib  # lazily, like csv below: a build starts faster without them

    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"cache-{safe[:80]}--{digest}"


def _check_ref(ref: str) -> str:
    if not ref:
        raise ToolkitError.bad_input("--cache-backend registry needs --cache-ref REPO (setting cache-ref)")
    if re.search(r"\s", ref) or "@" in ref or ":" in ref.rsplit("/", 1)[-1] or ref != ref.lower():
        raise ToolkitError.bad_input(f"--cache-ref {ref!r} must be a lowercase repository without tag or digest")
    return ref


def _cache_flags(tokens: Sequence[str]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        for flag in _CACHE_FLAGS:
            if tok == flag:
                if i + 1 >= len(tokens):
                    raise ToolkitError.bad_input(f"extra args: {flag} needs a value")
                found.append((flag, tokens[i + 1]))
                i += 1
            elif tok.startswith(flag + "="):
                found.append((flag, tok.split("=", 1)[1]))
        i += 1
    return found


def _without_flags(tokens: Sequence[str]) -> tuple[str, ...]:
    kept: list[str] = []
    skip = False
    for tok in tokens:
        if skip:
            skip = False
        elif tok in _CACHE_FLAGS:
            skip = True
        elif not tok.startswith(tuple(f + "=" for f in _CACHE_FLAGS)):
            kept.append(tok)
    return tuple(kept)


def _parse_csv(value: str) -> dict[str, str] | None:
    import csv

    try:
        fields = next(csv.reader([value]))
    except (csv.Error, StopIteration):
        return None
    out: dict[str, str] = {}
    for item in fields:
        name, eq, val = item.partition("=")
        if not eq:
            return None
        out[name.strip()] = val
    return out


def _local_pair(found: list[tuple[str, str]]) -> tuple[Path, dict[str, str]] | None:
    """Exactly one ``--cache-to type=local,dest=X`` and one ``--cache-from type=local,src=X``."""
    if len(found) != 2 or {flag for flag, _ in found} != set(_CACHE_FLAGS):
        return None
    values = {flag: _parse_csv(value) for flag, value in found}
    to, src = values["--cache-to"], values["--cache-from"]
    if to is None or src is None or to.get("type") != "local" or src.get("type") != "local":
        return None
    if set(src) != {"type", "src"} or not to.get("dest") or not src.get("src"):
        return None
    if Path(to["dest"]).as_posix().rstrip("/") != Path(src["src"]).as_posix().rstrip("/"):
        return None
    if "\0" in to["dest"]:
        raise ToolkitError.bad_input("extra args: cache directory contains a NUL character")
    return Path(to["dest"]), to
