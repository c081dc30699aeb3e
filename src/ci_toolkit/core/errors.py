"""The toolkit's one error type: a message for the user and the exit code it maps to."""

from __future__ import annotations

import errno

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INPUT = 2
EXIT_ENVIRONMENT = 3


class ToolkitError(Exception):
    """Raised with a message that says what to do; caught once, in ``cli.main``."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    @classmethod
    def bad_input(cls, message: str) -> ToolkitError:
        return cls(message, EXIT_INPUT)

    @classmethod
    def missing(cls, message: str) -> ToolkitError:
        return cls(message, EXIT_ENVIRONMENT)

    @classmethod
    def failed(cls, message: str) -> ToolkitError:
        return cls(message, EXIT_FAILED)

    @classmethod
    def from_os_error(cls, exc: OSError, what: str) -> ToolkitError:
        """``what`` (e.g. "cannot write out.json") with the system's reason. A path that
        does not exist or cannot be one is bad input; a full, read-only or forbidden place
        is a failed operation."""
        reason = _OS_REASONS.get(exc.errno or 0) or exc.strerror or str(exc)
        code = EXIT_INPUT if exc.errno in _PATH_ERRNOS else EXIT_FAILED
        return cls(f"{what}: {reason}", code)

    def __str__(self) -> str:
        return self.message


_PATH_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.ELOOP})
_OS_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENAMETOOLONG: "file name too long",
    errno.ENOENT: "no such file or directory",
}


class Stopped(BaseException):
    """A termination signal arrived; raised from the handler so ``finally`` blocks clean up.
    A BaseException so that ``except Exception`` in library code cannot swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum
