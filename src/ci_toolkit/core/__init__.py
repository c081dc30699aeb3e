"""Core: what every capability stands on. Settings and their cascade (``settings``,
``config``), CI detection (``ci``), the log and step outputs (``report``), the one subprocess
wrapper (``proc``), the one error type (``errors``), units and image references.

Imports nothing else from ci_toolkit."""
