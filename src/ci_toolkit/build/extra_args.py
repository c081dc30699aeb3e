"""Tokenize and expand ``CI_IMAGE_BUILD_EXTRA_ARGS`` without a shell.

POSIX quoting ('...', "...", backslash) splits the text into arguments; ``$VAR``, ``${VAR}``,
``${VAR:-default}`` and ``${VAR-default}`` expand from the given environment in unquoted and
double-quoted text, never inside single quotes; ``$$`` and ``\\$`` are a literal dollar. An
expansion never splits an argument. Everything a shell would *run* (``$(...)``, backticks,
``;``, ``|``, ``&``, redirections) is refused, so a variable set by a CI runner can add build
arguments but never execute anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ci_toolkit.core.errors import ToolkitError

MAX_LENGTH = 8192
_OPERATORS = frozenset(";|&<>()")
_SPECIAL_PARAMS = frozenset("0123456789@*#?!-")
# Inside double quotes a backslash escapes only these (POSIX); elsewhere it stays literal.
_DQ_ESCAPABLE = frozenset('$`"\\\n')


def expand(text: str, env: Mapping[str, str], *, source: str = "extra args") -> list[str]:
    """The arguments ``text`` stands for. Raises ``ToolkitError`` (exit 2) naming ``source``."""
    if len(text) > MAX_LENGTH:
        raise ToolkitError.bad_input(f"{source}: {len(text)} characters, at most {MAX_LENGTH} are accepted")
    if "\0" in text:
        raise ToolkitError.bad_input(f"{source}: contains a NUL character")
    return _Expander(text, env, source).tokens()


# Flags that make buildx read or write the runner host itself, not only the build: extra args
# are trusted CI configuration, but these are worth one line in every build's log.
_HOST_FLAGS = ("--output", "-o", "--secret", "--allow", "--ssh")


def host_access(tokens: Sequence[str]) -> list[str]:
    """The flags in ``tokens`` that reach the host: ``--output`` to a local path, ``--secret``
    with ``src=``, any ``--allow`` entitlement (security.insecure, network.host), any ``--ssh``."""
    found: list[str] = []
    words = iter(tokens)
    for word in words:
        flag, eq, value = word.partition("=") if word.startswith("--") else (word, "", "")
        if flag not in _HOST_FLAGS:
            continue
        if not eq:
            value = next(words, "")
        if _reaches_host(flag, value):
            found.append(f"{flag} {value}")
    return found


def _reaches_host(flag: str, value: str) -> bool:
    fields = dict(part.partition("=")[::2] for part in value.split(","))
    if flag in ("--output", "-o"):
        if "type" not in fields and "=" not in value:
            return value not in ("", "-")  # a bare path means type=local
        return fields.get("dest", "-") not in ("", "-")
    if flag == "--secret":
        return bool(fields.get("src") or fields.get("source"))
    return True


def _emit(out: list[str], parts: list[str], quoted: bool) -> None:
    # Like a shell, an unquoted expansion that comes out empty is no argument at all.
    word = "".join(parts)
    if word or quoted:
        out.append(word)


class _Expander:
    def __init__(self, text: str, env: Mapping[str, str], source: str) -> None:
        self.text = text
        self.env = env
        self.source = source
        self.pos = 0

    def fail(self, message: str, at: int | None = None) -> ToolkitError:
        where = self.pos if at is None else at
        return ToolkitError.bad_input(f"{self.source}: {message} (at character {where + 1})")

    def peek(self, offset: int = 0) -> str:
        i = self.pos + offset
        return self.text[i] if i < len(self.text) else ""

    def tokens(self) -> list[str]:
        out: list[str] = []
        parts: list[str] = []
        started = False  # a quote makes an argument even when it is empty: ''
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch in " \t\n\r":
                self.pos += 1
                _emit(out, parts, started)
                parts, started = [], False
                continue
            if ch in _OPERATORS:
                raise self.fail(f"shell operator {ch!r} is not allowed: extra args are never run by a shell")
            if ch == "'":
                parts.append(self._single_quoted())
                started = True
            elif ch == '"':
                parts.append(self._double_quoted())
                started = True
            else:
                parts.append(self._unquoted_char(ch))
        _emit(out, parts, started)
        return out

    def _unquoted_char(self, ch: str) -> str:
        if ch == "\\":
            nxt = self.peek(1)
            self.pos += 2
            if nxt == "":
                raise self.fail("a trailing backslash escapes nothing", self.pos - 2)
            return "" if nxt == "\n" else nxt
        if ch == "`":
            raise self.fail("command substitution with backticks is never executed")
        if ch == "$":
            return self._dollar()
        self.pos += 1
        return ch

    def _single_quoted(self) -> str:
        start = self.pos
        end = self.text.find("'", start + 1)
        if end < 0:
            raise self.fail("unbalanced single quote", start)
        self.pos = end + 1
        return self.text[start + 1 : end]

    def _double_quoted(self) -> str:
        start = self.pos
        self.pos += 1
        parts: list[str] = []
        while True:
            ch = self.peek()
            if ch == "":
                raise self.fail("unbalanced double quote", start)
            if ch == '"':
                self.pos += 1
                return "".join(parts)
            if ch == "\\" and self.peek(1) in _DQ_ESCAPABLE and self.peek(1) != "":
                nxt = self.peek(1)
                parts.append("" if nxt == "\n" else nxt)
                self.pos += 2
            elif ch == "`":
                raise self.fail("command substitution with backticks is never executed")
            elif ch == "$":
                parts.append(self._dollar())
            else:
                parts.append(ch)
                self.pos += 1

    def _dollar(self) -> str:
        start = self.pos
        nxt = self.peek(1)
        if nxt == "$":
            self.pos += 2
            return "$"
        if nxt == "(":
            raise self.fail("command substitution $(...) is never executed")
        if nxt == "{":
            return self._braced()
        if nxt.isascii() and (nxt.isalpha() or nxt == "_"):
            self.pos += 1
            name = self._name()
            return self._lookup(name, start)
        if nxt in _SPECIAL_PARAMS and nxt != "":
            raise self.fail(f"${nxt} is not supported: only named variables expand")
        if nxt in ("'", '"'):
            raise self.fail(f"${nxt}...{nxt} quoting is not supported")
        self.pos += 1
        return "$"

    def _name(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and (
            self.text[self.pos].isascii() and (self.text[self.pos].isalnum() or self.text[self.pos] == "_")
        ):
            self.pos += 1
        return self.text[start : self.pos]

    def _lookup(self, name: str, at: int) -> str:
        if name not in self.env:
            raise self.fail(f"undefined variable {name} (set it, or write ${{{name}:-default}})", at)
        return self.env[name]

    def _braced(self) -> str:
        start = self.pos
        self.pos += 2
        first = self.peek()
        if not (first.isascii() and (first.isalpha() or first == "_")):
            raise self.fail("bad substitution: ${ must be followed by a variable name", start)
        name = self._name()
        op = self.peek()
        if op == "}":
            self.pos += 1
            return self._lookup(name, start)
        if op == "":
            raise self.fail("unterminated ${", start)
        colon = op == ":"
        if colon:
            self.pos += 1
            op = self.peek()
        if op != "-":
            raise self.fail(
                f"unsupported expansion in ${{{name}...}}: only ${{{name}:-default}} and ${{{name}-default}}", start
            )
        self.pos += 1
        default = self._default_word(start)
        value = self.env.get(name)
        if value is None or (colon and value == ""):
            return default
        return value

    def _default_word(self, start: int) -> str:
        parts: list[str] = []
        while True:
            ch = self.peek()
            if ch == "":
                raise self.fail("unterminated ${", start)
            if ch == "}":
                self.pos += 1
                return "".join(parts)
            if ch in ("'", '"'):
                raise self.fail("quotes inside ${VAR:-default} are not supported; quote the whole argument", self.pos)
            if ch == "`":
                raise self.fail("command substitution with backticks is never executed")
            if ch == "\\":
                nxt = self.peek(1)
                if nxt == "":
                    raise self.fail("unterminated ${", start)
                parts.append(nxt)
                self.pos += 2
            elif ch == "$":
                parts.append(self._dollar())
            else:
                parts.append(ch)
                self.pos += 1
