"""Render a template to text, and nothing else: every template the toolkit reads (the project
file and what its steps say) renders here, in Jinja2's immutable sandbox with an undefined
that fails on any use. A project file comes from a pull request as often as from the
maintainers, and it renders on the runner host with the job's secrets in the environment:
an expression that reaches for Python internals is refused (exit 2), never evaluated."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

from ci_toolkit.core.errors import ToolkitError

TYPE_CHECKING = False  # not typing's: importing typing costs every command's start-up (CONTRIBUTING)
if TYPE_CHECKING:
    from typing import Any

    import jinja2

# A template that multiplies its way to gigabytes stalls the runner as surely as code would.
MAX_REPEAT = 1_000_000
MAX_EXPONENT = 128


def render_template(text: str, context: Mapping[str, Any], where: str, *, yaml_keys: bool = False) -> str:
    """Render in the sandbox; an error names ``where`` and the template line (and, with
    ``yaml_keys``, the YAML key path at that line, e.g. ``steps.app.build.dockerfile``)."""
    if not any(mark in text for mark in ("{{", "{%", "{#", "\r")):
        # Nothing for Jinja to do (it would only normalise \r\n): importing it costs ~70 ms of
        # CPU, more than the rest of a command's start-up.
        return text
    import jinja2
    from jinja2.exceptions import SecurityError

    try:
        return _environment().from_string(text).render(**context)
    except jinja2.TemplateSyntaxError as exc:
        raise ToolkitError.bad_input(f"{where}:{exc.lineno}: template syntax error: {exc.message}") from exc
    except SecurityError as exc:
        at, line = _at(exc, text, where, yaml_keys)
        raise ToolkitError.bad_input(f"{at}template refused {_expression(text, line)}: {exc}") from exc
    except jinja2.UndefinedError as exc:
        at, line = _at(exc, text, where, yaml_keys)
        message = f"undefined template variable in {_expression(text, line)}: {exc.message}"
        raise ToolkitError.bad_input(at + message) from exc
    except Exception as exc:  # any failure inside a template is bad input, not a crash
        at, line = _at(exc, text, where, yaml_keys)
        raise ToolkitError.bad_input(f"{at}template error in {_expression(text, line)}: {exc}") from exc


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    import jinja2
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Undefined(jinja2.StrictUndefined):
        # StrictUndefined still repr()s as "Undefined" inside a list, so an unsafe attribute
        # reached through `map(attribute=...)` would render quietly; every use fails instead.
        __repr__ = jinja2.StrictUndefined._fail_with_undefined_error

    class Sandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "**" and isinstance(right, int) and abs(right) > MAX_EXPONENT:
                raise SecurityError(f"exponent {right} is larger than {MAX_EXPONENT}")
            if operator == "*" and _repeat_size(left, right) > MAX_REPEAT:
                raise SecurityError(f"repetition is longer than {MAX_REPEAT}")
            return super().call_binop(context, operator, left, right)

    return Sandbox(undefined=Undefined, keep_trailing_newline=True, autoescape=False)


def _repeat_size(left: Any, right: Any) -> int:
    for seq, count in ((left, right), (right, left)):
        if isinstance(seq, (str, list, tuple)) and isinstance(count, int):
            return len(seq) * count
    return 0


def _at(exc: BaseException, text: str, where: str, yaml_keys: bool) -> tuple[str, int]:
    line = _template_line(exc)
    keys = yaml_key_path(text, line) if yaml_keys and line else ""
    return f"{where}:{line or '?'}: {keys + ': ' if keys else ''}", line


def _template_line(exc: BaseException) -> int:
    tb = exc.__traceback__
    line = 0
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


_EXPRESSION = re.compile(r"\{\{.*?\}\}|\{%.*?%\}")


def _expression(text: str, line: int) -> str:
    """The template expressions on ``line``, on one line, for the error message."""
    lines = text.splitlines()
    source = lines[line - 1] if 0 < line <= len(lines) else ""
    found = _EXPRESSION.findall(source) or [source.strip()]
    shown = " ".join(" ".join(found).split())
    return shown if len(shown) <= 200 else shown[:197] + "..."


_KEY_LINE = re.compile(r"""^(\s*)(?:-\s+)?("[^"]*"|'[^']*'|[^\s#'"{\[][^:#]*?)\s*:(?:\s+(.*))?$""")


def yaml_key_path(text: str, line: int) -> str:
    """The dotted YAML key path in effect at ``line`` (1-based) of block-style YAML, read from
    indentation alone, so it works on the raw template before it renders."""
    stack: list[tuple[int, str]] = []
    block_indent: int | None = None
    for raw in text.splitlines()[:line]:
        indent = len(raw) - len(raw.lstrip(" "))
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        if block_indent is not None and indent > block_indent:
            continue
        block_indent = None
        match = _KEY_LINE.match(raw)
        if match is None:
            continue
        indent = len(match.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match.group(2).strip("'\"")))
        if (match.group(3) or "").strip()[:1] in ("|", ">"):
            block_indent = indent
    return ".".join(key for _, key in stack)
