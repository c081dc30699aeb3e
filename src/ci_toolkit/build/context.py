"""A builder on another engine through a Docker context: the ``docker`` driver.

buildx gives every Docker context a builder of the same name that uses that engine's own
BuildKit (the ``docker`` driver), so ``setup-builder --driver docker --endpoint
unix:///run/other/docker.sock`` creates (or points) the context NAME at that engine, and
``build --builder NAME`` builds there. Nothing is pulled: no BuildKit image is needed, and the
engine's daemon.json holds its mirrors (``ci-toolkit mirror render --format daemon-json``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from ci_toolkit.core import proc
from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.report import Reporter


def ensure_context(name: str, endpoint: str, reporter: Reporter, *, dry_run: bool) -> tuple[str, list[list[str]]]:
    """Create the context, or update its endpoint; returns (action, commands run)."""
    if not endpoint.startswith(("unix://", "tcp://", "ssh://", "npipe://")):
        raise ToolkitError.bad_input(f"--endpoint {endpoint!r}: expected unix:///path/docker.sock, tcp:// or ssh://")
    current = None if dry_run else _endpoint(name, reporter)
    if current == endpoint:
        reporter.info(f"context {name} already points at {endpoint}")
        return "reused", []
    verb = "update" if current is not None else "create"
    argv = ["docker", "context", verb, name, "--docker", f"host={endpoint}"]
    proc.run(argv, reporter, dry_run=dry_run, echo=True, capture=True, what=f"docker context {verb}")
    return ("recreated" if current is not None else "created"), [argv]


def _endpoint(name: str, reporter: Reporter) -> str | None:
    done = proc.run(
        ["docker", "context", "inspect", name], reporter, capture=True, check=False, echo=False, what="docker context"
    )
    if done.returncode != 0:
        return None
    try:
        data = json.loads(done.stdout)
        return str(data[0]["Endpoints"]["docker"]["Host"])
    except (ValueError, LookupError, TypeError):
        return ""


def through_context(argv: list[str], builder: str, env: Mapping[str, str], reporter: Reporter) -> list[str]:
    """``docker --context NAME buildx build ...`` when the builder is a Docker context: buildx
    refuses ``--builder`` for another context's docker driver ("use docker --context=NAME")."""
    if not builder or argv[:3] != ["docker", "buildx", "build"]:
        return argv
    done = proc.run(["docker", "context", "inspect", builder], reporter, capture=True, check=False, echo=False, env=env)
    if done.returncode != 0:
        return argv  # a buildx builder (docker-container, remote, kubernetes)
    rest = argv[3:]
    at = rest.index("--builder") if "--builder" in rest else -1
    if at >= 0:
        del rest[at : at + 2]
    return ["docker", "--context", builder, "buildx", "build", *rest]
