"""ci-toolkit: build container images well in CI."""

from __future__ import annotations

try:
    # Written by setuptools-scm when the package is built or installed (from the git tag).
    from ci_toolkit._version import __version__ as __version__
except ImportError:  # a source tree used without installing it
    __version__ = "0.0.0"
