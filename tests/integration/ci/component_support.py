"""GitLab CI/CD component rendering, as GitLab documents it, for tests: a template is a
`spec:` header document, `---`, then the content. `include:` passes `inputs:`; each is
checked against its spec (unknown names, missing ones without `default`, `type` string,
boolean, number or array, `options`, `regex`), then every `$[[ inputs.NAME ]]` in keys and
values is replaced: a block that is the whole value keeps the input's type, a block inside a
longer string becomes text (booleans `true`/`false`). A name the spec does not declare is an
error. Interpolation functions (`| expand_vars`, ...) are not used by our templates and fail."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

BLOCK = re.compile(r"\$\[\[\s*(.*?)\s*\]\]")
TYPES = {"string": str, "boolean": bool, "number": (int, float), "array": list}


class ComponentError(Exception):
    pass


def load(path: Path) -> tuple[dict[str, Any], Any]:
    docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    if len(docs) != 2 or not isinstance(docs[0], dict) or "spec" not in docs[0]:
        raise ComponentError(f"{path}: expected a spec: header, ---, then the content")
    return docs[0]["spec"], docs[1]


def resolve_inputs(spec: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    declared: Mapping[str, Any] = spec.get("inputs") or {}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ComponentError(f"unknown input name provided: {unknown[0]}")
    values: dict[str, Any] = {}
    for name, rule in declared.items():
        rule = rule or {}
        if name in given:
            value = given[name]
        elif "default" in rule:
            value = rule["default"]
        else:
            raise ComponentError(f"`{name}` input: required value has not been provided")
        kind = rule.get("type", "string")
        if not isinstance(value, TYPES[kind]) or (kind == "number" and isinstance(value, bool)):
            raise ComponentError(f"`{name}` input: provided value is not a {kind}")
        if "options" in rule and value not in rule["options"]:
            raise ComponentError(f"`{name}` input: `{value}` cannot be used because it is not in the list of options")
        if "regex" in rule and not re.search(str(rule["regex"]), str(value)):
            raise ComponentError(f"`{name}` input: provided value does not match required RegEx pattern")
        values[name] = value
    return values


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _lookup(expression: str, values: Mapping[str, Any]) -> Any:
    if "|" in expression:
        raise ComponentError(f"interpolation functions are not emulated: {expression}")
    scope, _, name = expression.partition(".")
    if scope != "inputs" or name not in values:
        raise ComponentError(f"unknown interpolation key: `{name or expression}`")
    return values[name]


def _interpolate(node: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(node, dict):
        return {_interpolate(k, values): _interpolate(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, values) for v in node]
    if isinstance(node, str):
        whole = BLOCK.fullmatch(node.strip())
        if whole:
            return _lookup(whole.group(1), values)
        return BLOCK.sub(lambda m: _text(_lookup(m.group(1), values)), node)
    return node


def render(path: Path, inputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The jobs an `include:` of the component with these inputs adds to a pipeline."""
    spec, content = load(path)
    values = resolve_inputs(spec, inputs or {})
    rendered = _interpolate(content, values)
    if not isinstance(rendered, dict):
        raise ComponentError(f"{path}: the content is not a mapping of jobs")
    for name, job in rendered.items():
        for key, value in (job.get("variables") or {}).items():
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ComponentError(f"jobs:{name}:variables config should be a hash of key value pairs ({key})")
    return rendered
