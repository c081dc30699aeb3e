from __future__ import annotations

import sys

from ci_toolkit.cli import main

sys.exit(main())
