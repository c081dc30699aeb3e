"""The toolkit's one error type: a message for the user and the exit code it maps to."""

from __future__ import annotations

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

    def __str__(self) -> str:
        return self.message


class Stopped(BaseException):
    """A termination signal arrived; raised from the handler so ``finally`` blocks clean up.
    A BaseException so that ``except Exception`` in library code cannot swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum
