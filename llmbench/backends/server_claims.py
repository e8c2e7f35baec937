"""What an OpenAI-compatible server says is a claim: usage counts are checked, secrets are kept out of records.

A server's `usage` block is not a measurement: it is checked against what was streamed, and where it
disagrees the sample says so and the counted value is kept. A server that echoes request headers in an
error body would otherwise write the API key into results, journals and stderr: every text the backend
records passes through `Redactor` first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# No prompt of any model in use comes near this many tokens: a larger claim is not a count.
MAX_PLAUSIBLE_PROMPT_TOKENS = 10_000_000
_AUTH_VALUE = re.compile(
    r"""(?ix)
    (\b(?:proxy-)?authorization\b["']?\s*[:=]\s*["']?)   # a header name, as JSON, repr or raw text
    ((?:(?:bearer|basic|token)\s+)?[^\s"',;}\]]+)          # its value, with the scheme
    """
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@\"']+@")  # http://user:password@host
_MASK = "***"


@dataclass
class Redactor:
    """Replaces the API key, any Authorization header's value and a URL's password with `***` in a text."""

    secrets: list[str] = field(default_factory=list)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if len(secret) >= 4:  # a 1-3 character "key" would mask ordinary words
                text = text.replace(secret, _MASK)
        text = _AUTH_VALUE.sub(lambda m: m.group(1) + _MASK, text)
        text = _URL_USERINFO.sub(lambda m: m.group(1) + _MASK + "@", text)
        return _BEARER.sub(lambda m: m.group(1) + _MASK, text)

    def all(self, texts: Iterable[str]) -> list[str]:
        return [self(t) for t in texts]


@dataclass(frozen=True)
class Counted:
    """What the harness itself saw of one answer, against which the server's usage is checked."""

    token_events: int  # streamed chunks that carried a token
    max_new_tokens: int | None  # the request's max_tokens: no server may go past it
    local_output_tokens: int | None  # the local tokenizer's count of the text, where there is one
    local_prompt_tokens: int | None  # the prompt's token count where known here (token-id prompts)
    prompt_chars: int | None  # the length of the prompt text the server was sent


def checked_usage(usage: Any, counted: Counted) -> tuple[int | None, int | None, list[str]]:
    """(prompt_tokens, output_tokens, warnings): the server's counts where plausible, ours otherwise."""
    warnings: list[str] = []
    if usage is not None and not isinstance(usage, Mapping):
        warnings.append(f"the server's usage block is not an object ({_show(usage)}): ignored")
        usage = {}
    usage = usage or {}
    own_output = (
        counted.local_output_tokens if counted.local_output_tokens is not None else counted.token_events
    )
    output = _check(
        usage.get("completion_tokens"),
        "completion_tokens",
        low=max(0, counted.token_events - 1),  # a final empty chunk may carry no token of its own
        high=counted.max_new_tokens,
        own=own_output,
        own_what=f"{own_output} counted",
        warnings=warnings,
    )
    prompt_high = MAX_PLAUSIBLE_PROMPT_TOKENS
    if counted.prompt_chars is not None:  # a token is at least one character, bar a template's own tokens
        prompt_high = min(prompt_high, counted.prompt_chars + 8192)
    prompt = _check(
        usage.get("prompt_tokens"),
        "prompt_tokens",
        low=0,
        high=prompt_high,
        own=counted.local_prompt_tokens,
        own_what=f"{counted.local_prompt_tokens} counted" if counted.local_prompt_tokens is not None else "",
        warnings=warnings,
        exact=counted.local_prompt_tokens is not None,
    )
    return prompt, output, warnings


def _check(
    claim: Any,
    name: str,
    *,
    low: int,
    high: int | None,
    own: int | None,
    own_what: str,
    warnings: list[str],
    exact: bool = False,
) -> int | None:
    if claim is None:
        return own
    kept = f"used the {own_what}" if own_what else "left it unknown"
    if type(claim) is not int:  # bool is an int to Python, not a count to us
        warnings.append(f"the server's usage.{name} ({_show(claim)}) is not a whole number; {kept}")
        return own
    if exact and own is not None and claim != own:
        warnings.append(f"the server's usage.{name} ({claim}) disagrees with the {own} sent; {kept}")
        return own
    if claim < low or (high is not None and claim > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        warnings.append(f"the server's usage.{name} ({claim}) is not plausible (expected {bound}); {kept}")
        return own
    return claim


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def cached_prompt_tokens(usage: Any, prompt_tokens: int | None) -> int | None:
    """The prompt tokens the server says it served from its cache (OpenAI's `prompt_tokens_details.cached_tokens`,
    DeepSeek's `prompt_cache_hit_tokens`); None where it says nothing, or nothing plausible (more than the prompt)."""
    if not isinstance(usage, Mapping):
        return None
    details = usage.get("prompt_tokens_details")
    claim = details.get("cached_tokens") if isinstance(details, Mapping) else None
    if claim is None:
        claim = usage.get("prompt_cache_hit_tokens")
    if type(claim) is not int or claim < 0 or (prompt_tokens is not None and claim > prompt_tokens):
        return None
    return claim
