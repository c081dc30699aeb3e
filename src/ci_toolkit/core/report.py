"""What the toolkit tells the user and the CI: messages, log groups, secret masking,
step outputs and the step summary.

Human text goes to stderr so that ``--json`` leaves stdout for the machine-readable result.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ci_toolkit.core.errors import ToolkitError

TYPE_CHECKING = False  # not typing's: importing typing costs every command's start-up (CONTRIBUTING)
if TYPE_CHECKING:
    from typing import Any, TextIO

# A URL's userinfo (https://user:token@host/...) is a credential wherever it is printed.
_URL_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)([^/\s@]+)@")
MIN_SECRET = 3


def without_userinfo(text: str, replacement: str = "") -> str:
    """Every URL in ``text`` with its credentials removed (``replacement`` stands in for them);
    an ssh user alone (``ssh://git@host``) is a name, not a secret, and stays."""

    def strip(match: re.Match[str]) -> str:
        scheme, userinfo = match.group(1), match.group(2)
        if ":" not in userinfo and not scheme.lower().startswith("http"):
            return match.group(0)
        return scheme + (replacement + "@" if replacement else "")

    return _URL_USERINFO.sub(strip, text)


def secret_forms(secret: str) -> set[str]:
    """What a secret looks like wherever we print it: each line of it (a multi-line key is
    printed, and masked by the runner, line by line), and each of those as shell quoting,
    JSON, repr() and URL encoding spell it."""
    from urllib.parse import quote

    pieces = {secret} | {line.strip() for line in secret.splitlines()}
    forms: set[str] = set()
    for piece in pieces:
        forms |= {
            piece,
            piece.replace("'", "'\"'\"'"),  # inside shlex.quote()
            json.dumps(piece)[1:-1],
            repr(piece)[1:-1],
            quote(piece, safe=""),
        }
    return {form for form in forms if len(form) >= MIN_SECRET}


class Masker:
    """Replaces every registered secret, in every form we print it, and the credentials of
    every URL, with ``***`` in text we print."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._forms: list[str] = []

    def add(self, secret: str) -> None:
        # Very short values would mask ordinary words; they are not secrets worth the noise.
        if len(secret) < MIN_SECRET or secret in self._secrets:
            return
        self._secrets.add(secret)
        self._forms = sorted(set(self._forms) | secret_forms(secret), key=len, reverse=True)

    @property
    def secrets(self) -> frozenset[str]:
        return frozenset(self._secrets)

    def __call__(self, text: str) -> str:
        for form in self._forms:
            text = text.replace(form, "***")
        return without_userinfo(text, "***")


@dataclass
class Reporter:
    """The one place that writes to the user; every line passes through the masker."""

    provider: str = "local"
    env: Mapping[str, str] = field(default_factory=dict)
    json_mode: bool = False
    quiet: bool = False
    verbose: bool = False
    masker: Masker = field(default_factory=Masker)
    stream: TextIO | None = None
    stdout: TextIO | None = None
    _published: Mapping[str, Any] | None = None
    _summarized: bool = False
    _announced: set[str] = field(default_factory=set)

    @property
    def _err(self) -> TextIO:
        return self.stream or sys.stderr

    @property
    def _out(self) -> TextIO:
        return self.stdout or sys.stdout

    def add_secret(self, secret: str) -> None:
        if len(secret) < MIN_SECRET or secret in self.masker.secrets:
            return
        self.masker.add(secret)
        self._announce(secret)

    def set_provider(self, provider: str) -> None:
        """The CI is known once settings load; secrets registered before then (while the
        settings were read) are announced to it now."""
        self.provider = provider
        for secret in sorted(self.masker.secrets):
            self._announce(secret)

    def _announce(self, secret: str) -> None:
        if self.provider != "github" or secret in self._announced:
            return
        self._announced.add(secret)
        # The runner masks it in its own log too, including lines we never print. It takes one
        # line per command, so each line of a multi-line secret gets its own. Stderr: the
        # runner reads commands there too, and stdout stays the --json result alone.
        lines = secret.splitlines()
        for line in sorted({ln.strip() for ln in lines} if len(lines) > 1 else {secret}):
            if len(line) >= MIN_SECRET:
                self._raw(f"::add-mask::{_command_data(line)}\n", self._err)

    def _raw(self, text: str, stream: TextIO) -> None:
        stream.write(text)
        stream.flush()

    def info(self, message: str) -> None:
        if not self.quiet:
            self._raw(self.masker(message) + "\n", self._err)

    def debug(self, message: str) -> None:
        if self.verbose:
            self._raw(self.masker(message) + "\n", self._err)

    def warning(self, message: str) -> None:
        text = self.masker(message)
        if self.provider == "github":
            self._raw(f"::warning::{text}\n", self._err)
        else:
            self._raw(f"warning: {text}\n", self._err)

    def error(self, message: str) -> None:
        self._raw(f"error: {self.masker(message)}\n", self._err)

    def echo_command(self, argv: Sequence[str]) -> None:
        """``+ argv`` shell-quoted, each argument masked before it is quoted (quoting would
        otherwise spell a secret that holds a quote differently), then the line once more."""
        import shlex

        line = " ".join(shlex.quote(self.masker(arg)) for arg in argv)
        self._raw(f"+ {self.masker(line)}\n", self._err)

    def passthrough(self, text: str) -> None:
        """Output of a child process: masked, shown unless quiet."""
        if not self.quiet:
            self._raw(self.masker(text), self._err)

    def result(
        self, data: Mapping[str, Any], human: str | None = None, *, outputs: Mapping[str, str] | None = None
    ) -> None:
        """The command's result: JSON on stdout with --json, else human text. Commands a CI
        step runs pass ``outputs``: they are published with the result itself as ``metadata``."""
        if self.json_mode:
            self._raw(self.masker(json.dumps(data, indent=2, default=str)) + "\n", self._out)
        elif human is not None:
            self._raw(self.masker(human) + ("" if human.endswith("\n") else "\n"), self._out)
        if outputs is not None:
            metadata = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
            self.outputs({**{k: v for k, v in outputs.items() if v}, "metadata": metadata})
            self._published = data

    def finish(self, command: str) -> None:
        """After the command: a published result that got no summary of its own gets one."""
        if self._published is not None and not self._summarized:
            self.summary(fallback_summary(command, self._published))

    @contextmanager
    def group(self, title: str) -> Iterator[None]:
        title = self.masker(title)
        if self.provider == "github":
            self._raw(f"::group::{title}\n", self._err)
        elif self.provider == "gitlab":
            name = f"ci_toolkit_{os.urandom(4).hex()}"
            self._raw(f"\x1b[0Ksection_start:{int(time.time())}:{name}[collapsed=true]\r\x1b[0K{title}\n", self._err)
        else:
            self.info(f"--- {title}")
        try:
            yield
        finally:
            if self.provider == "github":
                self._raw("::endgroup::\n", self._err)
            elif self.provider == "gitlab":
                self._raw(f"\x1b[0Ksection_end:{int(time.time())}:{name}\r\x1b[0K\n", self._err)

    def outputs(self, values: Mapping[str, str], dotenv_path: Path | None = None) -> None:
        """Publish step outputs where this CI reads them."""
        try:
            write_outputs(self.provider, self.env, {k: self.masker(v) for k, v in values.items()}, dotenv_path)
        except OSError as exc:
            raise ToolkitError.from_os_error(exc, f"cannot write the step outputs ({exc.filename})") from exc

    def summary(self, markdown: str) -> None:
        self._summarized = True
        try:
            write_summary(self.env, self.masker(markdown))
        except OSError as exc:
            raise ToolkitError.from_os_error(exc, f"cannot write the step summary ({exc.filename})") from exc


def _command_data(value: str) -> str:
    """A GitHub workflow command's data, escaped as the runner unescapes it."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _delimiter(value: str) -> str:
    while True:
        delim = f"ghadelimiter_{os.urandom(8).hex()}"
        if delim not in value:
            return delim


def write_outputs(
    provider: str,
    env: Mapping[str, str],
    values: Mapping[str, str],
    dotenv_path: Path | None = None,
) -> list[Path]:
    """GitHub: ``$GITHUB_OUTPUT`` heredoc form (safe for multiline values). GitLab and others:
    a dotenv file for ``artifacts:reports:dotenv`` (``CI_TOOLKIT_OUTPUTS_FILE`` or the given
    path). Returns the files written."""
    written: list[Path] = []
    github_file = env.get("GITHUB_OUTPUT")
    if provider == "github" and github_file:
        with open(github_file, "a", encoding="utf-8") as fh:
            for key, value in values.items():
                delim = _delimiter(value)
                fh.write(f"{key}<<{delim}\n{value}\n{delim}\n")
        written.append(Path(github_file))
    target = dotenv_path or (Path(env["CI_TOOLKIT_OUTPUTS_FILE"]) if env.get("CI_TOOLKIT_OUTPUTS_FILE") else None)
    if target is None and provider == "gitlab":
        target = Path("ci-toolkit.env")
    if target is not None:
        with open(target, "a", encoding="utf-8") as fh:
            for key, value in values.items():
                # GitLab's dotenv report takes one line per variable; keep values single-line.
                name = "CI_TOOLKIT_" + key.upper().replace("-", "_")
                line = json.dumps(value) if "\n" in value else value
                fh.write(f"{name}={line}\n")
        written.append(target)
    return written


def fallback_summary(command: str, data: Mapping[str, Any]) -> str:
    """A command's result as Markdown: scalars in one table, lists of records in their own."""
    lines = [f"### ci-toolkit {command}", "", "| | |", "|---|---|"]
    tables: list[str] = []
    for key, value in data.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            columns = list(value[0])
            tables += ["", f"**{key}**", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            tables += ["| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |" for row in value]
        else:
            lines.append(f"| {key} | {_cell(value)} |")
    return "\n".join(lines + tables)


def _cell(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text.replace("|", "\\|").replace("\n", " ")


def write_summary(env: Mapping[str, str], markdown: str) -> Path | None:
    path = env.get("GITHUB_STEP_SUMMARY")
    if not path:
        return None
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(markdown.rstrip("\n") + "\n\n")
    return Path(path)
