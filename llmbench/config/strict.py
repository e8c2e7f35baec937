"""What every config a user writes inherits: unknown keys refused, and every number finite and of a sane size."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Limits on what a number in a config may be: each is far beyond any real use and far below what
# would exhaust a machine (a prompt of 1e12 tokens, 1e35 tokens to generate).
MAX_TOKENS = 1 << 20  # tokens one request may generate
MAX_PROMPT_TOKENS = 10_000_000
MAX_SEED = (1 << 32) - 1  # numpy, torch and vLLM all take it
MAX_COUNT = 1_000_000  # requests per point, samples per prompt, concurrency, repeats
MAX_INT = (1 << 63) - 1
MAX_FLOAT = 1e15
Tokens = Annotated[int, Field(ge=1, le=MAX_TOKENS)]
PromptTokens = Annotated[int, Field(ge=1, le=MAX_PROMPT_TOKENS)]
Count = Annotated[int, Field(ge=1, le=MAX_COUNT)]


class SaneNumbers(BaseModel):
    """Every number anywhere in the model, free-form options included, is finite and of a sane size.

    A typo like `1e35` is refused here, in one line, rather than exhausting the machine later.
    """

    @field_validator("*", mode="after")
    @classmethod
    def _numbers_in_range(cls, value: Any) -> Any:
        _check_numbers(value)
        return value


class Strict(SaneNumbers):
    """Base for everything a user writes: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_numbers(value: Any, depth: int = 0) -> None:
    if isinstance(value, bool) or depth > 64:
        return
    if isinstance(value, int) and not -MAX_INT <= value <= MAX_INT:
        raise ValueError(f"the number {_magnitude(value)} is out of range (at most {MAX_INT})")
    if isinstance(value, float) and not -MAX_FLOAT <= value <= MAX_FLOAT:  # NaN fails both
        raise ValueError(f"the number {value} is not finite or out of range (at most {MAX_FLOAT:g})")
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_numbers(item, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            _check_numbers(item, depth + 1)


def _magnitude(value: int) -> str:
    """A huge integer in a few characters: 1e+29, or ~1e400 beyond a float's range (where :g raises)."""
    if value.bit_length() < 1000:
        return f"{value:.3g}"
    return f"{'-' if value < 0 else ''}~1e{int(value.bit_length() * 0.30103)}"
