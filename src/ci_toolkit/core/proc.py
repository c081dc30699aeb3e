"""The one subprocess wrapper. Every external command is echoed as ``+ cmd`` (shell-quoted,
secrets masked) so a CI log can be replayed by hand; output is streamed through the masker;
a failure raises the toolkit error with the tail of stderr."""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ci_toolkit.core.errors import EXIT_ENVIRONMENT, EXIT_FAILED, ToolkitError
from ci_toolkit.core.report import Reporter

TYPE_CHECKING = False  # not typing's: importing typing costs every command's start-up (CONTRIBUTING)
if TYPE_CHECKING:
    from typing import IO

TAIL_LINES = 30


@dataclass(frozen=True)
class Completed:
    """A finished command: its exit status, captured stdout and the tail of stderr."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr_tail: str


def format_argv(argv: Sequence[str]) -> str:
    import shlex  # here: only an echoed command is quoted

    return " ".join(shlex.quote(a) for a in argv)


def run(
    argv: Sequence[str],
    reporter: Reporter,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    capture: bool = False,
    check: bool = True,
    dry_run: bool = False,
    echo: bool | None = None,
    stdin_data: str | None = None,
    timeout: float | None = None,
    what: str | None = None,
    exit_code: int = EXIT_FAILED,
) -> Completed:
    """Run ``argv``. ``capture`` keeps stdout for the caller instead of streaming it.
    In dry-run mode the command is echoed and not run. ``what`` names the operation in errors."""
    argv = tuple(argv)
    # In dry-run the echo is the output; otherwise -q silences it even where callers echo.
    if dry_run or ((reporter.verbose if echo is None else echo) and not reporter.quiet):
        reporter.echo_command(argv)
    if dry_run:
        return Completed(argv, 0, "", "")
    full_env = dict(os.environ if env is None else env)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            cwd=cwd,
            text=True,
            errors="replace",
            # A group of its own: a cancel reaches the whole tree (docker -> docker-buildx), and
            # a terminal's ^C reaches only us, so the child stops when we say and not before.
            start_new_session=True,
        )
    except OSError as exc:
        raise _start_failure(exc, argv[0], cwd) from exc
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    out_chunks: list[str] = []
    try:
        returncode = _communicate(proc, reporter, stdin_data, tail, out_chunks if capture else None, timeout)
    except subprocess.TimeoutExpired as exc:
        raise ToolkitError(f"{what or argv[0]} timed out after {timeout:g}s") from exc
    result = Completed(argv, returncode, "".join(out_chunks), "".join(tail))
    if check and returncode != 0:
        raise ToolkitError(_failure_message(result, reporter, what), exit_code)
    return result


def _communicate(
    proc: subprocess.Popen[str],
    reporter: Reporter,
    stdin_data: str | None,
    tail: collections.deque[str],
    keep: list[str] | None,
    timeout: float | None,
) -> int:
    """Feed, stream and wait. Whatever ends this early (Stopped on SIGTERM, ^C, a timeout, a
    bug) stops the child's process group first: a cancelled job must not leave a build
    running, let alone pushing, after we exit."""
    err_thread = threading.Thread(target=_pump, args=(proc.stderr, reporter, tail, None), daemon=True)
    try:
        err_thread.start()
        if stdin_data is not None and proc.stdin is not None:
            # A child that exits without reading all of its input is judged by its exit code.
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(stdin_data)
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        _pump(proc.stdout, reporter, None, keep)
        return proc.wait(timeout=timeout)
    except BaseException:
        stop_group(proc, _stop_grace)
        raise
    finally:
        err_thread.join(timeout=5)


_stop_grace = 10.0


def set_stop_grace(seconds: float) -> None:
    """The setting ``stop-grace``, given once by ``cli`` after the settings load."""
    global _stop_grace
    _stop_grace = seconds


def stop_group(proc: subprocess.Popen[str], grace: float) -> None:
    """SIGTERM to the child's process group, SIGKILL after ``grace`` seconds, then wait until
    no member is left. Signals that arrive meanwhile are deferred, so a second SIGTERM from
    an impatient runner cannot cut this short."""
    with _deferred_signals():
        _signal_group(proc.pid, signal.SIGTERM)
        if not _group_gone(proc, grace):
            _signal_group(proc.pid, signal.SIGKILL)
            _group_gone(proc, 30.0)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_gone(proc: subprocess.Popen[str], timeout: float) -> bool:
    """True once the leader is reaped and no member of its group is alive."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            try:
                os.killpg(proc.pid, 0)
            except (ProcessLookupError, PermissionError):
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


@contextlib.contextmanager
def _deferred_signals() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    signums = (signal.SIGTERM, signal.SIGINT)
    previous = {s: signal.signal(s, lambda n, _f: pending.append(n)) for s in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _start_failure(exc: OSError, program: str, cwd: Path | None) -> ToolkitError:
    if cwd is not None and not Path(cwd).is_dir():
        return ToolkitError.bad_input(f"cannot run {program}: the working directory {cwd} does not exist")
    if isinstance(exc, FileNotFoundError):
        return ToolkitError(f"{program} not found: install it or fix PATH", EXIT_ENVIRONMENT)
    if isinstance(exc, PermissionError):
        return ToolkitError(f"cannot run {program}: permission denied: fix its mode or PATH", EXIT_ENVIRONMENT)
    return ToolkitError.from_os_error(exc, f"cannot run {program}")


def _pump(
    stream: IO[str] | None,
    reporter: Reporter,
    tail: collections.deque[str] | None,
    keep: list[str] | None,
) -> None:
    if stream is None:
        return
    for line in stream:
        if keep is not None:
            keep.append(line)
            continue
        if tail is not None:
            tail.append(line)
        reporter.passthrough(line)


def _failure_message(result: Completed, reporter: Reporter, what: str | None) -> str:
    name = what or format_argv(result.argv[:3])
    tail_lines = [ln.strip() for ln in result.stderr_tail.splitlines() if ln.strip()]
    last = reporter.masker(tail_lines[-1]) if tail_lines else "no error output"
    return f"{name} failed (exit {result.returncode}): {last}"
