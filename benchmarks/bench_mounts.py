"""RUN cache mounts kept across engines (issue 14), side by side in one run:

B6 cache mounts: the B5 image with its apt layers on ``RUN --mount=type=cache`` for
   /var/cache/apt and /var/lib/apt/lists (archives kept: docker-clean removed) and a generated
   C project of a few thousand lines compiled with ccache (CCACHE_DIR on a cache mount):
   benchmarks/images/mounts. Two `ci-toolkit build` sides, each with its own cache root:
   `cache-mounts: auto` (the mounts saved into the cache store and restored into the fresh
   engine) and `cache-mounts: none` (the same layer cache, the mounts lost with the engine).
   Interleaved, each build after an engine wipe: a cold build, then rebuilds that each add one
   package to the task layer's list (so the task layer and the compile below it run again).
   Measured on the rebuilds: time with mounts / without; what apt downloads again of packages
   it fetched before (from its own `Get:` lines); ccache's hit rate on the unchanged sources
   (from `ccache --print-stats`, printed into the build log by the Dockerfile).

Every build here runs after `docker buildx prune -af`: point DOCKER_HOST at an engine of your
own, never a shared one:

    scripts/bootstrap --engine NAME --with debian
    DOCKER_HOST=unix:///run/ci-toolkit-engines/NAME/docker.sock scripts/bench bench_mounts

CI_TOOLKIT_BENCH_SMALL=1 shrinks the package lists for a quick check; report figures from the
real-size run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.bench_warm import profile
from benchmarks.common import Ratio, engine_wipe, job_env, mib, toolkit_run

IMAGE = Path(__file__).resolve().parent / "images" / "mounts"
SMALL = os.environ.get("CI_TOOLKIT_BENCH_SMALL") == "1"
BASE = "build-essential cmake ccache python3 python3-pip python3-venv git pkg-config ca-certificates curl xz-utils clang lld llvm"  # noqa: E501
TASK = "libboost-dev libevent-dev libsqlite3-dev valgrind capnproto libcapnp-dev libzmq3-dev"
SMALL_BASE, SMALL_TASK = "ccache gcc libc6-dev make", "libevent-dev"
# One more of these per rebuild: the changed package list.
ADDED = ("zlib1g-dev", "libgmp-dev", "liblz4-dev")
REBUILDS = 3
FILES, FUNCTIONS = 16, 30

_GET = re.compile(r"Get:\d+ \S+ \S+ \S+ (\S+) \S+ \S+ \[([\d.,]+) ([kMG]?B)\]")
_STAT = re.compile(r"ccache-stat (\w+)\s+(\d+)")
_UNITS = {"B": 1, "kB": 1000, "MB": 1000**2, "GB": 1000**3}
_VERTEX = re.compile(r"^#(\d+) \[[^\]]+\] RUN (.*)$")
_DONE = re.compile(r"^#(\d+) DONE ([\d.]+)s$")


# --- the generated C project --------------------------------------------------------------


def _function(f: int, g: int) -> str:
    a, b, c = 3 + (f * 7 + g) % 11, 5 + (f + g * 3) % 13, 1 + (f * g) % 7
    return f"""\
static unsigned long f{f}_{g}(unsigned long x) {{
    unsigned long acc = {a}UL;
    for (int i = 0; i < {b}; i++) {{
        acc = acc * {31 + g}UL + (x ^ (unsigned long)i);
        if (acc % {c + 2}UL == 1UL) acc += x >> {c};
        else acc ^= acc << {1 + g % 5};
    }}
    return acc;
}}
"""


def generate(src: Path) -> int:
    """A C project of ``FILES`` units (deterministic, so ccache can hit); lines written."""
    src.mkdir(parents=True, exist_ok=True)
    lines = 0
    main = ["#include <stdio.h>\n"]
    for f in range(FILES):
        body = "".join(_function(f, g) for g in range(FUNCTIONS))
        calls = " + ".join(f"f{f}_{g}(x)" for g in range(FUNCTIONS))
        body += f"unsigned long unit{f}(unsigned long x) {{\n    return {calls};\n}}\n"
        (src / f"unit{f}.c").write_text(body)
        lines += body.count("\n")
        main.append(f"unsigned long unit{f}(unsigned long x);\n")
    total = " + ".join(f"unit{f}(1)" for f in range(FILES))
    main.append(f'int main(void) {{\n    printf("%lu\\n", {total});\n    return 0;\n}}\n')
    (src / "main.c").write_text("".join(main))
    objs = " ".join(f"unit{f}.o" for f in range(FILES))
    (src / "Makefile").write_text(
        f"CFLAGS = -O2 -g\nOBJS = main.o {objs}\napp: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n"
        "%.o: %.c\n\t$(CC) $(CFLAGS) -c -o $@ $<\n"
    )
    return lines + len(main)


# --- reading the build log ----------------------------------------------------------------


def apt_fetched(log: str) -> dict[str, int]:
    """Package -> bytes, from apt's ``Get:N URL SUITE ARCH PACKAGE ARCH VERSION [SIZE]`` lines
    (index files have fewer words and are not counted)."""
    fetched: dict[str, int] = {}
    for m in _GET.finditer(log):
        fetched[m.group(1)] = fetched.get(m.group(1), 0) + int(float(m.group(2).replace(",", "")) * _UNITS[m.group(3)])
    return fetched


def ccache_stats(log: str) -> dict[str, int]:
    stats = {name: int(value) for name, value in _STAT.findall(log)}
    if not stats:
        raise RuntimeError("no ccache statistics in the build log")
    return stats


def step_seconds(log: str) -> tuple[float, float]:
    """Seconds of the task layer's apt step and of the compile step, from buildx's progress
    (the last vertex of each that ran; 0 when cached)."""
    names: dict[str, str] = {}
    apt = compile_ = 0.0
    for line in log.splitlines():
        if m := _VERTEX.match(line):
            names[m.group(1)] = m.group(2)
        elif (m := _DONE.match(line)) and m.group(1) in names:
            name = names[m.group(1)]
            if "apt-get install" in name:
                apt = float(m.group(2))
            elif "ccache -z" in name:
                compile_ = float(m.group(2))
    return apt, compile_


def hit_rate(stats: dict[str, int]) -> tuple[int, int]:
    hits = stats.get("direct_cache_hit", 0) + stats.get("preprocessed_cache_hit", 0)
    return hits, hits + stats.get("cache_miss", 0)


# --- the two sides ------------------------------------------------------------------------


@dataclass
class Rebuild:
    seconds: float
    refetched: int
    """Bytes apt downloaded again of packages this side had fetched in an earlier build."""
    fetched: int
    hits: int
    compiles: int
    before: float
    """Seconds before buildx (the mounts restored), from the toolkit's own durations."""
    after: float
    """Seconds after it (the mounts saved, the generation committed)."""
    restored: int
    saved: int
    apt: float
    """Seconds of the task layer's apt step (download and install)."""
    compile: float
    profile: str


@dataclass
class Side:
    name: str
    root: Path
    settings: list[str]
    seen: set[str] = field(default_factory=set)
    rebuilds: list[Rebuild] = field(default_factory=list)

    def build(self, ctx: Path, tag: str, packages: str) -> Rebuild:
        base = SMALL_BASE if SMALL else BASE
        args = ["build", "--json", "--cache-root", str(self.root), "--cache-key", "b6", *self.settings,
                "--build-arg", f"BASE_PACKAGES={base}", "--build-arg", f"TASK_PACKAGES={packages}",
                "--file", str(ctx / "Dockerfile"), "--tag", tag, str(ctx)]  # fmt: skip
        start = time.perf_counter()
        proc = toolkit_run(args, ctx, job_env(), quiet=False)
        seconds = time.perf_counter() - start
        result = json.loads(proc.stdout)
        durations, cache = result["durations"], result["cache"]
        fetched = apt_fetched(proc.stderr)
        refetched = sum(size for name, size in fetched.items() if name in self.seen)
        self.seen.update(fetched)
        hits, compiles = hit_rate(ccache_stats(proc.stderr))
        apt, compile_ = step_seconds(proc.stderr)
        rebuild = Rebuild(seconds, refetched, sum(fetched.values()), hits, compiles,
                          before=durations["total"] - durations["build"] - durations["cache"],
                          after=durations["cache"], restored=cache["mounts_restored_bytes"],
                          saved=cache["mounts_saved_bytes"], apt=apt, compile=compile_,
                          profile=str(profile(proc.stderr, durations["build"])))  # fmt: skip
        print(f"  B6 {self.name} [{packages.split()[-1]}]: {seconds:.1f} s (before buildx {rebuild.before:.1f} s, "
              f"after {rebuild.after:.1f} s, mounts {cache['mounts_state']}), apt step {apt:.1f} s fetching "
              f"{mib(rebuild.fetched)} ({mib(refetched)} again), compile step {compile_:.1f} s with "
              f"{hits}/{compiles} ccache hits; buildx {rebuild.profile}", file=sys.stderr, flush=True)  # fmt: skip
        return rebuild

    def median(self, what: str = "seconds") -> float:
        return float(statistics.median(getattr(r, what) for r in self.rebuilds))

    def steps(self) -> str:
        return f"apt step {self.median('apt'):.1f} s, compile step {self.median('compile'):.1f} s"


def _mounts_size(root: Path) -> int:
    mounts = root / "b6" / "current" / "mounts"
    return sum(p.stat().st_size for p in mounts.iterdir()) if mounts.is_dir() else 0


def b6_mounts(tmp: Path) -> list[Ratio]:
    ctx = tmp / "ctx"
    shutil.copytree(IMAGE, ctx)
    lines = generate(ctx / "src")
    tag = f"ci-toolkit-bench-b6-{uuid.uuid4().hex[:12]}:latest"
    ours = Side("mounts restored", tmp / "with", [])
    none = Side("cache-mounts none", tmp / "without", ["--set", "cache-mounts=none"])
    task = SMALL_TASK if SMALL else TASK
    try:
        for rev in range(REBUILDS + 1):
            packages = " ".join([task, *ADDED[:rev]])
            for side in (ours, none) if rev % 2 == 0 else (none, ours):
                engine_wipe(tag)
                rebuild = side.build(ctx, tag, packages)
                if rev:
                    side.rebuilds.append(rebuild)
    finally:
        engine_wipe(tag)
    return _rows("B6 cache mounts" + (" (SMALL)" if SMALL else ""), ours, none, lines)


def _rows(label: str, ours: Side, none: Side, lines: int) -> list[Ratio]:
    refetched = max(r.refetched for r in ours.rebuilds)
    hits, compiles = sum(r.hits for r in ours.rebuilds), sum(r.compiles for r in ours.rebuilds)
    n_hits, n_compiles = sum(r.hits for r in none.rebuilds), sum(r.compiles for r in none.rebuilds)
    return [
        Ratio(f"{label}: rebuild after wipe, one package added, mounts restored / none", ours.median() / none.median(),
              "<= 0.5",
              f"{ours.median():.1f} s (restore {ours.median('before'):.1f} s of {mib(ours.median('restored'))}, "
              f"save and commit {ours.median('after'):.1f} s, stored {mib(_mounts_size(ours.root))}; {ours.steps()})",
              f"{none.median():.1f} s (before buildx {none.median('before'):.1f} s, "
              f"after {none.median('after'):.1f} s; {none.steps()})"),
        Ratio(f"{label}: apt bytes downloaded again for packages fetched before, restored / none",
              refetched / max(none.median("refetched"), 1), "<= 0.0",
              f"{mib(refetched)} again (fetched {mib(ours.median('fetched'))}: the added package)",
              f"{mib(none.median('refetched'))} again (fetched {mib(none.median('fetched'))})"),
        Ratio(f"{label}: ccache hit rate on unchanged sources ({lines} lines), mounts restored",
              hits / max(compiles, 1), ">= 0.9", f"{hits}/{compiles} hits", f"none: {n_hits}/{n_compiles} hits"),
    ]  # fmt: skip


def run() -> list[Ratio]:
    tmp = Path(tempfile.mkdtemp(prefix="ci-toolkit-bench-mounts-"))
    try:
        return b6_mounts(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
