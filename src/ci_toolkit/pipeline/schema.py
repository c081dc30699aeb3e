"""Validate the pipeline sections of ci-toolkit.yaml against the JSON Schema shipped in the
package (``schema.json``).

The validator covers only the keywords that schema uses (type, properties,
additionalProperties, required, minProperties, propertyNames, items, minItems, uniqueItems,
enum, pattern, minLength, oneOf and local ``$ref``): a few dozen lines instead of a runtime
dependency, and messages that name the step and key (``steps.app.build.platforms[1]``).
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

Path_ = tuple[str | int, ...]

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}
_TYPE_TEXT = {"object": "a mapping", "array": "a list", "boolean": "true or false", "null": "null"}


@dataclass(frozen=True)
class SchemaError:
    path: Path_
    message: str

    def __str__(self) -> str:
        where = format_path(self.path)
        return f"{where}: {self.message}" if where else self.message


def format_path(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


@functools.cache
def schema() -> Mapping[str, Any]:
    data = resources.files("ci_toolkit.pipeline").joinpath("schema.json").read_text(encoding="utf-8")
    loaded: Mapping[str, Any] = json.loads(data)
    return loaded


def validate(document: Any) -> list[SchemaError]:
    """Every violation, in document order (the first is the one to report)."""
    root = schema()
    return list(_check(document, root, (), root))


def _resolve(node: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in node:
        ref = str(node["$ref"])
        if not ref.startswith("#/"):
            raise ValueError(f"only local $ref is supported: {ref}")
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        extra = {k: v for k, v in node.items() if k != "$ref"}
        node = {**target, **extra}
    return node


def _is_type(value: Any, name: str) -> bool:
    if isinstance(value, bool) and name in ("integer", "number"):
        return False
    return isinstance(value, _TYPES[name])


def _types(node: Mapping[str, Any]) -> list[str]:
    kind = node.get("type")
    if kind is None:
        return []
    return [kind] if isinstance(kind, str) else list(kind)


def _type_text(names: Sequence[str]) -> str:
    return " or ".join(_TYPE_TEXT.get(n, f"a {n}") for n in names)


def _check(value: Any, node: Mapping[str, Any], path: Path_, root: Mapping[str, Any]) -> Iterator[SchemaError]:
    node = _resolve(node, root)
    if "oneOf" in node:
        yield from _check_one_of(value, node["oneOf"], path, root)
        return
    types = _types(node)
    if types and not any(_is_type(value, t) for t in types):
        yield SchemaError(path, f"expected {_type_text(types)}, got {_describe(value)}")
        return
    if "enum" in node and value not in node["enum"]:
        choices = ", ".join(str(c) for c in node["enum"])
        yield SchemaError(path, f"must be one of {choices}, got {_describe(value)}")
    if isinstance(value, str):
        yield from _check_string(value, node, path)
    elif isinstance(value, list):
        yield from _check_array(value, node, path, root)
    elif isinstance(value, dict):
        yield from _check_object(value, node, path, root)


def _check_string(value: str, node: Mapping[str, Any], path: Path_) -> Iterator[SchemaError]:
    if len(value) < node.get("minLength", 0):
        yield SchemaError(path, "must not be empty")
    pattern = node.get("pattern")
    if pattern is not None and re.search(pattern, value) is None:
        hint = f" ({node['description']})" if "description" in node else ""
        yield SchemaError(path, f"invalid value {value!r}{hint}")


def _check_array(
    value: list[Any], node: Mapping[str, Any], path: Path_, root: Mapping[str, Any]
) -> Iterator[SchemaError]:
    if len(value) < node.get("minItems", 0):
        yield SchemaError(path, "must not be empty" if node["minItems"] == 1 else f"needs {node['minItems']} items")
    if node.get("uniqueItems"):
        seen: list[Any] = []
        for index, item in enumerate(value):
            if item in seen:
                yield SchemaError((*path, index), f"duplicate {_describe(item)}")
            seen.append(item)
    if "items" in node:
        for index, item in enumerate(value):
            yield from _check(item, node["items"], (*path, index), root)


def _check_object(
    value: dict[Any, Any], node: Mapping[str, Any], path: Path_, root: Mapping[str, Any]
) -> Iterator[SchemaError]:
    properties: Mapping[str, Any] = node.get("properties", {})
    if len(value) < node.get("minProperties", 0):
        yield SchemaError(path, "must not be empty")
    for key in node.get("required", ()):
        if key not in value:
            yield SchemaError(path, f"missing required key {key!r}")
    extra = node.get("additionalProperties", True)
    names = node.get("propertyNames")
    for key, item in value.items():
        if not isinstance(key, str):
            yield SchemaError(path, f"keys must be strings, got {_describe(key)}")
            continue
        if names is not None:
            for error in _check(key, names, (*path, key), root):
                yield SchemaError(error.path, f"invalid name {key!r} ({_resolve(names, root).get('description', '')})")
                break
        if key in properties:
            yield from _check(item, properties[key], (*path, key), root)
        elif extra is False:
            yield SchemaError((*path, key), f"unknown key{_suggest(key, properties)}")
        elif isinstance(extra, dict):
            yield from _check(item, extra, (*path, key), root)


def _check_one_of(value: Any, options: Sequence[Any], path: Path_, root: Mapping[str, Any]) -> Iterator[SchemaError]:
    resolved = [_resolve(o, root) for o in options]
    matching = [o for o in resolved if not _types(o) or any(_is_type(value, t) for t in _types(o))]
    if not matching:
        wanted = [t for o in resolved for t in _types(o)]
        yield SchemaError(path, f"expected {_type_text(list(dict.fromkeys(wanted)))}, got {_describe(value)}")
        return
    results = [list(_check(value, o, path, root)) for o in matching]
    if any(not errors for errors in results):
        return
    yield from results[0]


def _suggest(key: str, properties: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(key, sorted(properties), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (expected one of: {', '.join(properties)})" if properties else ""


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return repr(value)
