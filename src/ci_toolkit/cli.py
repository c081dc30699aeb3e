"""Parse the command line, load settings once, call one command function, map errors to
exit codes. Nothing else catches ToolkitError.

Module-level imports stay minimal: `ci-toolkit --version` is the commonest probe in CI
scripts and must not pay for argparse, pathlib or any command module."""

from __future__ import annotations

import os
import sys

from ci_toolkit import __version__
from ci_toolkit.core.errors import EXIT_INPUT, Stopped, ToolkitError

TYPE_CHECKING = False  # not typing's: importing typing costs every command's start-up (CONTRIBUTING)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Mapping, Sequence
    from pathlib import Path
    from types import FrameType
    from typing import Any, NoReturn

    from ci_toolkit.core.report import Reporter

# Each module in ci_toolkit.commands exposes register(subparsers, common); it sets `handler`.
COMMAND_MODULES = (
    "version",
    "config",
    "doctor",
    "mirror",
    "setup_builder",
    "run",
    "promote",
    "merge",
    "build",
    "meta",
    "cache",
    "expand_args",
    "pipeline",
    "sweep",
)


def _parser_class() -> type[argparse.ArgumentParser]:
    import argparse

    class Parser(argparse.ArgumentParser):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("formatter_class", _formatter)
            super().__init__(*args, **kwargs)

        def error(self, message: str) -> NoReturn:
            raise ToolkitError(f"{self.prog}: {message}", EXIT_INPUT)

    return Parser


def _formatter(prog: str) -> argparse.HelpFormatter:
    """argparse's formatter with the width given: argparse builds one to check every
    add_argument, and finding the width itself imports shutil (with bz2 and lzma), ~10 ms of
    every command's start-up. The same rule as shutil.get_terminal_size, asked once per process
    (argparse asks for a formatter about fifty times while the build command is registered)."""
    import argparse

    return argparse.HelpFormatter(prog, width=_help_width())


_width = 0  # the help width once known (0: not asked yet)


def _help_width() -> int:
    global _width
    if not _width:
        text = os.environ.get("COLUMNS", "")
        columns = int(text) if text.isdigit() else 0
        if columns <= 0:
            try:
                columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
            except (AttributeError, ValueError, OSError):
                columns = 80
        _width = (columns or 80) - 2
    return _width


def _global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    import argparse

    # Subcommands accept the same options after the command name; SUPPRESS keeps a value
    # given before the command from being reset by the subparser's default.
    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    parser.add_argument("--config", metavar="FILE", default=default(None), help="project file [./ci-toolkit.yaml]")
    parser.add_argument(
        "--env-file",
        metavar="FILE",
        action="append",
        default=default([]),
        help="dotenv file, repeatable [./.env]",
    )
    parser.add_argument("--set", metavar="KEY=VALUE", action="append", default=default([]), help="override a setting")
    parser.add_argument("--json", action="store_true", default=default(False), help="machine-readable result on stdout")
    parser.add_argument("-v", "--verbose", action="store_true", default=default(False), help="echo commands")
    parser.add_argument(
        "--debug",
        action="store_true",
        default=default(False),
        help="print tracebacks (also CI_TOOLKIT_DEBUG=1)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", default=default(False), help="only errors and results")
    parser.add_argument(
        "--dry-run", action="store_true", default=default(False), help="print the exact operations, change nothing"
    )


_VALUE_OPTIONS = ("--config", "--env-file", "--set")


def _command_in(argv: Sequence[str]) -> str | None:
    """The command named in argv, found without argparse (global options may precede it)."""
    tokens = iter(argv)
    for token in tokens:
        if token in _VALUE_OPTIONS:
            next(tokens, None)
        elif token == "--":
            return None
        elif not token.startswith("-"):
            module = token.replace("-", "_")
            return module if module in COMMAND_MODULES else None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or with ``only`` one command registered: importing every command
    module (and what they import) costs more than most commands' own work."""
    import importlib

    parser_class = _parser_class()
    parser = parser_class(prog="ci-toolkit", description="Build container images well in CI.")
    parser.add_argument("--version", action="version", version=f"ci-toolkit {__version__}")
    _global_options(parser, top=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=parser_class)
    subparsers.required = True
    common = parser_class(add_help=False)
    _global_options(common, top=False)
    for name in (only,) if only else COMMAND_MODULES:
        module = importlib.import_module(f"ci_toolkit.commands.{name}")
        module.register(subparsers, common)
    return parser


def run() -> NoReturn:
    """The process entry (the ``ci-toolkit`` script, ``python -m ci_toolkit``): ``main``, then
    exit without the interpreter's teardown. By then every command has cleaned up in its own
    ``finally`` blocks (containers, temporary directories, reader threads joined), the toolkit
    registers no atexit handler, and tearing down the ~150 loaded modules only frees memory
    the exit frees anyway: 5-9 ms of CPU of every command (issue 14, B1). Output is flushed
    first; a reader that went away (a closed pipe) loses nothing it would have read."""
    import contextlib
    import gc

    gc.disable()  # until the command starts (_collect_from_here)
    code = main()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more can be written
            stream.flush()
    os._exit(code)


def _raise_stopped(signum: int, _frame: FrameType | None) -> None:
    raise Stopped(signum)


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv == ["--version"]:
        print(f"ci-toolkit {__version__}")
        return 0
    import signal

    from ci_toolkit.core.ci import detect_provider
    from ci_toolkit.core.report import Reporter

    env = dict(os.environ) if env is None else env
    # Known before the settings load, so a secret they hold is announced before any error.
    reporter = Reporter(env=env, provider=detect_provider(env))
    debug = "--debug" in argv or env.get("CI_TOOLKIT_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")
    verbose = False
    previous = signal.signal(signal.SIGTERM, _raise_stopped)
    try:
        args = build_parser(_command_in(argv)).parse_args(argv)
        debug = debug or args.debug
        verbose = args.verbose
        return _dispatch(args, env, cwd or _working_directory(), reporter)
    except ToolkitError as exc:
        if debug or verbose:
            import traceback

            traceback.print_exc()
        reporter.error(exc.message)
        return exc.exit_code
    except KeyboardInterrupt:
        reporter.error("interrupted")
        return 130
    except Stopped as exc:
        reporter.error(str(exc))
        return exc.exit_code
    except OSError as exc:
        # A path the system refuses (too long, a loop, a device gone) wherever a command met
        # it: an environment or input problem with the file named, never a bug report.
        error = _os_error(exc)
        reporter.error(error.message)
        return error.exit_code
    except Exception as exc:  # the last resort: every expected failure is classified earlier
        return _internal_error(exc, reporter, env, debug=debug)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _os_error(exc: OSError) -> ToolkitError:
    where = f"cannot use {exc.filename}" if exc.filename else "system call failed"
    return ToolkitError.from_os_error(exc, where)


def _working_directory() -> Path:
    from pathlib import Path

    try:
        return Path.cwd()
    except OSError as exc:
        raise ToolkitError.missing(
            f"the current directory is gone ({exc.strerror or exc}): cd into an existing directory"
        ) from exc


def _internal_error(exc: Exception, reporter: Reporter, env: Mapping[str, str], *, debug: bool) -> int:
    """A bug, not a user error: one line, and the traceback where a bug report can take it."""
    import traceback

    text = reporter.masker("".join(traceback.format_exception(exc)))
    where = ""
    if debug:
        sys.stderr.write(text)
    else:
        where = _save_traceback(text, env)
    detail = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    reporter.error(f"internal error: {detail}" + (f" (traceback in {where})" if where else ""))
    return 1


def _save_traceback(text: str, env: Mapping[str, str]) -> str:
    import tempfile

    for directory in (env.get("RUNNER_TEMP") or env.get("TMPDIR"), None):
        try:
            fd, path = tempfile.mkstemp(prefix="ci-toolkit-traceback-", suffix=".txt", dir=directory or None)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError:
            continue
        return path
    return "nowhere: rerun with --debug"


def _dispatch(args: argparse.Namespace, env: Mapping[str, str], cwd: Path, reporter: Reporter) -> int:
    from ci_toolkit.app import App
    from ci_toolkit.core import config, proc, units

    reporter.json_mode = args.json
    loaded = config.load(
        env,
        cwd=cwd,
        config_file=args.config,
        env_files=args.env_file,
        overrides=args.set,
        on_secret=reporter.add_secret,
    )
    reporter.env = loaded.env
    reporter.set_provider(loaded.ci.provider)
    reporter.quiet = args.quiet
    reporter.verbose = args.verbose
    proc.set_stop_grace(units.parse_duration(loaded.settings.stop_grace, "setting stop-grace"))
    app = App(config=loaded, reporter=reporter, cwd=cwd, dry_run=args.dry_run)
    _collect_from_here()
    result: int = args.handler(args, app)
    reporter.finish(args.command)
    return result


def _collect_from_here() -> None:
    """``run`` starts with the cyclic garbage collector off: start-up (imports, the parser, the
    settings) allocates much and frees little, and its collections cost ~3 ms. From here on it
    runs again, and what start-up built (alive until exit) is frozen out of its walks. No-op
    when called in-process (tests): the collector was never turned off there."""
    import gc

    if not gc.isenabled():
        gc.freeze()
        gc.enable()


if __name__ == "__main__":
    sys.exit(main())
