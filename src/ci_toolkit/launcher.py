"""``python -m ci_toolkit.launcher COMMAND``: the CI launcher (``scripts/ci-action``: INPUT_*
variables -> one ``ci-toolkit`` command line) for jobs that installed the toolkit from a
wheel, which ships that very script as ``ci_toolkit/ci-action`` (one source, no copy)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path


def main() -> None:
    script = Path(__file__).with_name("ci-action")
    sys.argv[0] = str(script)
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
