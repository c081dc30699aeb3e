from __future__ import annotations

import argparse

from ci_toolkit.app import App

TYPE_CHECKING = False  # not typing's: importing typing costs every command's start-up (CONTRIBUTING)
if TYPE_CHECKING:
    from typing import Any

LEVELS = ("manifest", "index", "manifest-descriptor", "index-descriptor")


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "meta",
        parents=[common],
        help="image tags, labels and annotations from the git context (docker/metadata-action's rules)",
        description="Compute tags from tag rules (type=semver,pattern={{version}}; type=ref,event=branch|tag|pr; "
        "type=sha; type=raw,value=X; type=schedule; type=match; type=edge) and a flavor (latest=auto, prefix=, "
        "suffix=) for the event the CI reports (GitHub, GitLab, Cirrus, Buildkite, Jenkins, or the local checkout). "
        "Outputs: version, tags, tag-names, labels, annotations, json.",
    )
    add_rule_options(p, images_help="image name to tag, or name=NAME,enable=BOOL (repeatable)")
    p.add_argument("--label", action="append", default=[], metavar="K=V", help="label over the generated ones")
    p.add_argument(
        "--annotation-level",
        action="append",
        default=[],
        choices=LEVELS,
        help="where the annotations output puts each annotation (repeatable; default manifest)",
    )
    p.add_argument("--sep-tags", default="\n", metavar="SEP", help="separator of the tags output (default newline)")
    p.add_argument("--sep-labels", default="\n", metavar="SEP", help="separator of labels and annotations outputs")
    p.set_defaults(handler=run)


def add_rule_options(p: argparse.ArgumentParser, *, images_help: str) -> None:
    """The metadata-action inputs ``meta`` and ``build`` share."""
    p.add_argument("--image", dest="images", action="append", default=[], metavar="NAME", help=images_help)
    p.add_argument(
        "--tags-from",
        dest="tag_rules",
        action="append",
        default=None,
        metavar="RULES",
        help="tag rules, one per line or per option (metadata-action's `tags` input)",
    )
    p.add_argument(
        "--flavor", action="append", default=[], metavar="F", help="latest=auto|true|false, prefix=, suffix="
    )


def run(args: argparse.Namespace, app: App) -> int:
    import json

    from ci_toolkit.build.argv import parse_pairs, source_url
    from ci_toolkit.build.tags import MetaRequest, compute

    request = MetaRequest(
        images=tuple(args.images),
        rules="\n".join(args.tag_rules or ()),
        flavor="\n".join(args.flavor),
        labels=parse_pairs(args.label, "--label"),
        annotation_levels=tuple(args.annotation_level) or ("manifest",),
    )
    meta = compute(request, app.ci, source_url=source_url(app.env))
    data = meta.as_dict()
    labels = [f"{k}={v}" for k, v in meta.labels.items()]
    outputs = {
        "version": meta.version,
        "tags": args.sep_tags.join(meta.tags),
        "tag-names": args.sep_tags.join(meta.tag_names),
        "labels": args.sep_labels.join(labels),
        "annotations": args.sep_labels.join(meta.annotations),
        "json": json.dumps(
            {"tags": list(meta.tags), "labels": dict(meta.labels), "annotations": list(meta.annotations)}
        ),
    }
    app.reporter.result(data, "\n".join(meta.tags) if meta.tags else "(no tags for this event)", outputs=outputs)
    return 0
