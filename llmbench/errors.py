"""The few exception types the CLI turns into one clear line and an exit code."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class LLMBenchError(Exception):
    """Base class: a problem llmbench can explain in one line (exit code 1)."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UserInputError(LLMBenchError):
    """Bad input from the user: a file, a flag, a name. Exit code 2."""

    exit_code = 2


class ConfigError(UserInputError):
    """A suite or model config that does not validate."""


class DataError(UserInputError):
    """A dataset that cannot be found, read or reached."""


class ResultsFileError(UserInputError):
    """A results file that is corrupt or of a schema version this llmbench cannot read."""


class BackendError(LLMBenchError):
    """A backend that failed to load or generate."""


class MissingDependencyError(UserInputError):
    """An optional package that a chosen plugin needs is not installed."""

    def __init__(self, package: str, extra: str | None = None, *, purpose: str = "") -> None:
        hint = f"pip install 'llmbench[{extra}]'" if extra else f"pip install {package}"
        what = f" for {purpose}" if purpose else ""
        super().__init__(f"the package '{package}' is needed{what} but is not installed", hint=hint)


class RunFailedError(LLMBenchError):
    """Every sample of a run failed: nothing worth scoring came back."""


def validation_line(exc: ValidationError, *, prefix: str = "") -> str:
    """A pydantic ValidationError as one line: the first error's path and message, and how many more.

    `prefix` goes before the path (`set.` for a study variant's changes); pydantic's internal
    `function-...` steps are left out of the path.
    """
    errors = exc.errors()
    err = errors[0]
    steps = [str(p) for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
    where = prefix + ".".join(steps) if steps else prefix.rstrip(".") or "(top level)"
    more = len(errors) - 1
    return f"{where}: {err['msg']}" + (f" (+{more} more error{'s' if more > 1 else ''})" if more else "")
