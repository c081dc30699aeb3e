"""Build: one ``docker buildx build`` with safe extra args, a managed cache and mirrors.

Public entries: ``run_build(BuildRequest, host) -> BuildResult`` (the pipeline runs one per
step), ``build.extra_args.expand``, ``build.builder.setup_builder``, ``build.doctor.run_checks``.

    result = run_build(BuildRequest(context=".", tags=("repo:tag",), ...), app)

``app`` is anything with ``settings``, ``env``, ``ci``, ``reporter``, ``cwd`` and ``dry_run``
(``ci_toolkit.app.App`` fits).
"""

from __future__ import annotations

from ci_toolkit.build.request import BuildHost, BuildRequest, BuildResult

__all__ = ["BuildHost", "BuildRequest", "BuildResult", "run_build"]


def run_build(request: BuildRequest, host: BuildHost) -> BuildResult:
    """Run one build. Raises ``ToolkitError``: exit 2 bad input (nothing created), 1 build
    failed (with the failing step's log tail), 3 docker/buildx missing or too old."""
    from ci_toolkit.build.execute import execute

    return execute(request, host)
