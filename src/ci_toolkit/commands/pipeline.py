"""`ci-toolkit pipeline validate | plan | run`: the steps of ci-toolkit.yaml."""

from __future__ import annotations

import argparse
import dataclasses
import io
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_toolkit.app import App
from ci_toolkit.core import proc
from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.report import Reporter
from ci_toolkit.pipeline.model import Pipeline, load
from ci_toolkit.pipeline.plan import Options, PlannedStep, check, plan, project_slug, select

if TYPE_CHECKING:
    from ci_toolkit.pipeline.run import RunReport


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("pipeline", parents=[common], help="multi-step, multi-platform builds")
    sub = parser.add_subparsers(dest="pipeline_command", metavar="ACTION", parser_class=type(parser))
    sub.required = True
    validate = sub.add_parser("validate", parents=[common], help="check ci-toolkit.yaml's steps")
    validate.set_defaults(handler=validate_command)
    plan_parser = sub.add_parser("plan", parents=[common], help="print the steps and exact commands; run nothing")
    _step_options(plan_parser)
    plan_parser.set_defaults(handler=plan_command)
    run = sub.add_parser("run", parents=[common], help="run the steps in order")
    _step_options(run)
    run.add_argument("--keep-going", action="store_true", help="after a failure, still run independent steps")
    run.add_argument(
        "--artifacts",
        metavar="FILE",
        default=None,
        help="results file; run.artifacts go beside it (default: artifacts.json; buildrunner.results/artifacts.json)",
    )
    run.add_argument(
        "--digest-dir", metavar="DIR", default="", help="with --push-by-digest: write DIR/<os>-<arch>.json"
    )
    run.set_defaults(handler=run_command)
    merge = sub.add_parser("merge", parents=[common], help="merge the per-platform digests of every step, then tag")
    merge.add_argument(
        "--step", metavar="NAME", action="append", default=[], help="only this step and what it needs (repeatable)"
    )
    merge.add_argument("--platform", metavar="OS/ARCH", action="append", default=[], help="expected platforms instead")
    merge.add_argument("--digest-dir", metavar="DIR", required=True, help="the platform jobs' digest files")
    merge.add_argument(
        "--artifacts", metavar="FILE", default="artifacts.json", help="results file (default: artifacts.json)"
    )
    merge.set_defaults(handler=merge_command)


def _step_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--step", metavar="NAME", action="append", default=[], help="only this step and what it needs (repeatable)"
    )
    parser.add_argument("--push", action="store_true", help="also push each step's push: targets")
    parser.add_argument(
        "--platform", metavar="OS/ARCH", action="append", default=[], help="build for these platforms instead"
    )
    parser.add_argument(
        "--push-by-digest", action="store_true", help="build the one --platform, push every step untagged by digest"
    )


def _load(app: App) -> Pipeline:
    path = app.config.project_path
    if path is None:
        raise ToolkitError.bad_input("no ci-toolkit.yaml or buildrunner.yaml here: pass --config FILE")
    if "steps" not in app.project:
        raise ToolkitError.bad_input(f"{path.name}: steps: missing (a pipeline needs at least one step)")
    if app.config.project_format == "buildrunner":
        from ci_toolkit.pipeline import buildrunner

        # buildrunner resolves relative paths from the directory it runs in (its source tree).
        return buildrunner.load(
            app.project,
            file=path.name,
            project_dir=app.cwd,
            build_tag=app.ci.build_tag,
            context=app.config.template_context,
            allow_outside=app.settings.allow_paths_outside_project,
        )
    allow = app.settings.allow_paths_outside_project
    return load(app.project, file=path.name, project_dir=path.parent, build_tag=app.ci.build_tag, allow_outside=allow)


def _options(args: argparse.Namespace, app: App, pipeline: Pipeline) -> Options:
    platforms = tuple(p.strip() for item in getattr(args, "platform", ()) for p in item.split(",") if p.strip())
    return Options(
        build_registry=app.settings.build_registry,
        build_tag=app.ci.build_tag,
        project=project_slug(pipeline.project_dir.name),
        push=getattr(args, "push", False),
        platforms=platforms,
        label_prefix=app.settings.label_prefix,
        push_by_digest=getattr(args, "push_by_digest", False),
    )


def validate_command(args: argparse.Namespace, app: App) -> int:
    pipeline = _load(app)
    # Cross-step bases always have a way over now (bases.choose): check the settings only.
    check(pipeline, dataclasses.replace(_options(args, app, pipeline), local_bases=True))
    names = [s.name for s in pipeline.steps]
    app.reporter.result(
        {"valid": True, "file": pipeline.file, "steps": names},
        f"{pipeline.file}: valid, {len(names)} step(s): {', '.join(names)}",
    )
    return 0


def plan_command(args: argparse.Namespace, app: App) -> int:
    from ci_toolkit.pipeline import bases, split

    pipeline = _load(app)
    options = _options(args, app, pipeline)
    split.check_options(options)
    path = bases.choose(pipeline, options, app)
    options = bases.for_plan(path, options)
    wanted = {s.name for s in select(pipeline, tuple(args.step))}
    planned = [p for p in plan(pipeline, options) if p.step.name in wanted]
    rows = [_row(p, app, pipeline.project_dir) for p in planned]
    promotions = _promotions(pipeline, wanted, options.push)
    text = f"bases: {path.kind}: {path.reason}\n" + _plan_text(pipeline.file, rows)
    text += _promote_text(promotions, options.push)
    data = {"file": pipeline.file, "bases": path.as_dict(), "steps": rows, "promote": promotions}
    app.reporter.result(data, text)
    return 0


def _promotions(pipeline: Pipeline, wanted: set[str], push: bool) -> list[dict[str, Any]]:
    """What the ``promote:`` section will move once every step succeeded (only with --push)."""
    from ci_toolkit.pipeline.model import split_tag

    found = []
    for name, spec in pipeline.promote.items():
        if name not in wanted:
            continue
        tags = list((spec if isinstance(spec, dict) else {"tags": spec})["tags"])
        repos = list(dict.fromkeys(split_tag(t)[0] for t in pipeline.step(name).push_targets))
        found.append({"step": name, "repositories": repos, "tags": tags, "runs": push})
    return found


def _promote_text(promotions: list[dict[str, Any]], push: bool) -> str:
    if not promotions:
        return ""
    when = "after every step succeeded" if push else "skipped: only with --push"
    lines = [f"promote ({when}; never backwards):"]
    for item in promotions:
        targets = ", ".join(f"{repo}:{tag}" for repo in item["repositories"] for tag in item["tags"])
        lines.append(f"   {item['step']}: {targets} <- this build's digest")
    return "\n" + "\n".join(lines)


def run_command(args: argparse.Namespace, app: App) -> int:
    from ci_toolkit.pipeline import bases, split
    from ci_toolkit.pipeline.run import run

    pipeline = _load(app)
    options = _options(args, app, pipeline)
    split.check_options(options)
    if args.digest_dir and not options.push_by_digest:
        raise ToolkitError.bad_input("--digest-dir goes with --push-by-digest")
    path = bases.choose(pipeline, options, app)
    app.reporter.info(f"bases: {path.kind}: {path.reason}")
    with bases.prepared(path, options, app) as ready:
        report = run(
            pipeline,
            ready,
            app,
            names=tuple(args.step),
            keep_going=args.keep_going,
            artifacts=_path(app, args.artifacts or pipeline.results_file),
        )
    outputs = {}
    if args.digest_dir and not report.failed and not app.dry_run:
        outputs["digest-file"] = str(split.write_digests(report, options.platforms[0], _path(app, args.digest_dir)))
    return _report(report, app, outputs)


def merge_command(args: argparse.Namespace, app: App) -> int:
    from ci_toolkit.pipeline import split
    from ci_toolkit.registry import digests

    pipeline = _load(app)
    options = _options(args, app, pipeline)
    records = digests.read(_path(app, args.digest_dir))
    report = split.merge_steps(
        pipeline, options, app, names=tuple(args.step), records=records, artifacts=_path(app, args.artifacts)
    )
    return _report(report, app, {})


def _path(app: App, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else app.cwd / path


def _report(report: RunReport, app: App, outputs: dict[str, str]) -> int:
    data = {"steps": {o.name: o.as_dict() for o in report.outcomes}, "artifacts": str(report.artifacts)}
    lines = [f"{o.name}: {o.status}{' ' + o.image if o.image else ''}" for o in report.outcomes]
    app.reporter.result(data, "\n".join(lines), outputs=outputs)
    return 1 if report.failed else 0


def _row(planned: PlannedStep, app: App, project_dir: Path) -> dict[str, Any]:
    step = planned.step
    row: dict[str, Any] = {"name": step.name, "depends": list(step.depends)}
    request = planned.request
    if request is not None:
        row.update(
            image=_stable(planned.image_ref),
            platforms=list(request.platforms) or ["(builder default)"],
            push=list(planned.push_targets),
            build_contexts={k: _stable(v) for k, v in request.build_contexts.items()},
            cache={"key": request.cache_key, "backend": request.cache_backend or app.settings.cache_backend},
            command=_command(planned, app, project_dir),
        )
        if request.dockerfile_text is not None:
            row["dockerfile"] = request.dockerfile_text
    if planned.run:
        row["run"] = dict(planned.run)
    return row


def _command(planned: PlannedStep, app: App, project_dir: Path) -> str:
    """The exact buildx command, from the build module's own dry run; the values that differ
    on every call (temporary paths, the creation time) are shown as placeholders."""
    from ci_toolkit.build import run_build
    from ci_toolkit.pipeline.host import StepHost

    assert planned.request is not None
    quiet = Reporter(quiet=True, stream=io.StringIO(), stdout=io.StringIO(), masker=app.reporter.masker)
    dry = dataclasses.replace(app, dry_run=True, reporter=quiet)
    result = run_build(planned.request, StepHost(dry, project_dir))
    argv = [_stable(a) for a in result.argv]
    text = proc.format_argv(argv)
    return text.replace(str(project_dir), ".")


_VOLATILE = (
    (re.compile(r"127\.0\.0\.1:65535/"), "127.0.0.1:<port>/"),
    (re.compile(r"^((?:[a-z-]+:)?org\.opencontainers\.image\.created=).*$"), r"\1<now>"),
    (re.compile(r"^/.*/metadata\.json$"), "<metadata-file>"),
    (re.compile(r"/tmp-<pid>-<random>"), "/<new generation>"),
    (re.compile(r"/gen-[^,/]+"), "/<current generation>"),
)


def _stable(arg: str) -> str:
    for pattern, repl in _VOLATILE:
        arg = pattern.sub(repl, arg)
    return arg


def _plan_text(file: str, rows: list[dict[str, Any]]) -> str:
    lines = [f"{file}: {len(rows)} step(s), in this order:"]
    for number, row in enumerate(rows, 1):
        after = f" (after {', '.join(row['depends'])})" if row["depends"] else ""
        lines.append(f"{number}. {row['name']}{after}")
        if "image" in row:
            lines.append(f"   image:     {row['image']}@<digest>")
            lines.append(f"   platforms: {', '.join(row['platforms'])}")
            lines.append(f"   push:      {', '.join(row['push']) or '- (only with --push)'}")
            lines.append(f"   cache:     {row['cache']['backend']}, key {row['cache']['key']}")
            for name, value in row["build_contexts"].items():
                lines.append(f"   base:      {name} <- {value}")
            if "dockerfile" in row:
                lines.append("   dockerfile (inline):")
                lines.extend(f"     | {line}" for line in row["dockerfile"].rstrip("\n").splitlines())
            lines.append(f"   + {row['command']}")
        if "run" in row:
            lines.append(f"   run:       {row['run'].get('image', '')}")
    return "\n".join(lines)
