"""What buildx's plain progress says about a build as it streams by: its steps, which came
from the cache, their errors and last log lines, and how long the cache imports took."""

from __future__ import annotations

import dataclasses
import re

from ci_toolkit.core.report import Reporter

_STEP = re.compile(r"^#(\d+) (\[(?:[^\]]* )?\d+/\d+\] .*)$")
_CACHED = re.compile(r"^#(\d+) CACHED\s*$")
_ERROR = re.compile(r"^#(\d+) ERROR: (.*)$")
_LOG = re.compile(r"^#(\d+) \d+\.\d+ (.*)$")
_IMPORT = re.compile(r"^#(\d+) importing cache manifest from ")
_DONE = re.compile(r"^#(\d+) DONE (\d+(?:\.\d+)?)s$")
# A layer blob fetched or unpacked under a step's own vertex: BuildKit does that only for a
# result it took from an imported cache (lazily, when the next step or the exporter needs it).
_PULLED = re.compile(r"^#(\d+) (?:extracting )?sha256:[0-9a-f]{64}\b")
_FROM = re.compile(r"^\[[^\]]*\] FROM ")


@dataclasses.dataclass
class Tally(Reporter):
    """The caller's reporter that also reads buildx's plain progress as it streams by."""

    steps: dict[str, str] = dataclasses.field(default_factory=dict)
    cached: set[str] = dataclasses.field(default_factory=set)
    logs: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    errors: dict[str, str] = dataclasses.field(default_factory=dict)
    imports: set[str] = dataclasses.field(default_factory=set)
    import_seconds: float = 0.0
    pulled: set[str] = dataclasses.field(default_factory=set)

    def served(self) -> set[str]:
        """The steps served from the cache. BuildKit marks a step CACHED, but a step taken from
        an imported cache whose layer is fetched right after re-announces its vertex for that
        pull without the mark, and buildx's progress keeps only the latest state of a vertex
        between two prints: the ``CACHED`` line is then never printed (seen on a second engine
        importing the registry cache). Its blob rows are: a step that runs makes its layer, it
        never fetches it. A FROM's rows are the base image's pull, not a cache hit."""
        pulled = {v for v in self.pulled if v in self.steps and not _FROM.match(self.steps[v])}
        return self.cached | pulled

    def ran(self) -> list[str]:
        """The steps that ran (not served from the cache)."""
        served = self.served()
        return [text for vertex, text in self.steps.items() if vertex not in served]

    def passthrough(self, text: str) -> None:
        super().passthrough(text)
        line = text.rstrip("\n")
        if m := _STEP.match(line):
            self.steps.setdefault(m.group(1), m.group(2))
        elif m := _IMPORT.match(line):
            self.imports.add(m.group(1))
        elif (m := _DONE.match(line)) and m.group(1) in self.imports:
            self.import_seconds += float(m.group(2))
        elif m := _CACHED.match(line):
            self.cached.add(m.group(1))
        elif m := _PULLED.match(line):
            self.pulled.add(m.group(1))
        elif m := _ERROR.match(line):
            self.errors.setdefault(m.group(1), m.group(2))
        elif m := _LOG.match(line):
            log = self.logs.setdefault(m.group(1), [])
            log.append(m.group(2))
            del log[:-20]
