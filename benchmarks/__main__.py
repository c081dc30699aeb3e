from __future__ import annotations

import importlib
import pkgutil
import sys

import benchmarks
from benchmarks.common import Ratio


def main(selected: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))
    if selected:
        names = [n for n in names if any(s in n for s in selected)]
    rows: list[Ratio] = []
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows.extend(importlib.import_module(f"benchmarks.{name}").run())
    print("| benchmark | ratio | goal | met | ours | baseline |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.name} | {r.ratio:.3f} | {r.goal} | {'yes' if r.met() else 'NO'} | {r.ours} | {r.baseline} |")
    return 0


sys.exit(main(sys.argv[1:]))
