"""What a backend can say about its engine's prefix cache: whether it is on, and how many prompt tokens hit it.

Optional: the perf runner asks backends that implement `ReportsPrefixCache`; for the others the
state is unknown and no hit rate is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class PrefixCacheState:
    """The engine's prefix caching: on, off, or None where nothing says; `source` says who said so."""

    enabled: bool | None
    can_bypass: bool  # a request with a `cache_salt` shares no cached blocks (caching off for it)
    source: str


@dataclass(frozen=True)
class PrefixCacheCounters:
    """Prompt tokens looked up in the prefix cache and those found there, counted since the engine started."""

    queried_tokens: float
    hit_tokens: float
    source: str


@runtime_checkable
class ReportsPrefixCache(Protocol):
    def prefix_cache_state(self) -> PrefixCacheState: ...

    def prefix_cache_counters(self) -> PrefixCacheCounters | None:
        """The counters now; None where the engine or server does not report them."""
        ...


def hit_rate(before: PrefixCacheCounters | None, after: PrefixCacheCounters | None) -> float | None:
    """Hit tokens / queried tokens between two readings; None without both or without a query between."""
    if before is None or after is None:
        return None
    queried = after.queried_tokens - before.queried_tokens
    return (after.hit_tokens - before.hit_tokens) / queried if queried > 0 else None


def state_of(backend: Any) -> PrefixCacheState:
    if isinstance(backend, ReportsPrefixCache):
        return backend.prefix_cache_state()
    return PrefixCacheState(enabled=None, can_bypass=False, source="the backend does not report it")


def counters_of(backend: Any) -> PrefixCacheCounters | None:
    return backend.prefix_cache_counters() if isinstance(backend, ReportsPrefixCache) else None


# ---------------------------------------------------------------- a vLLM server's /metrics

_QUERIES = "vllm:prefix_cache_queries_total"
_HITS = "vllm:prefix_cache_hits_total"
_CACHE_INFO = "vllm:cache_config_info"


def _server_samples(base_url: str, timeout_s: float) -> dict[str, list[tuple[dict[str, str], float]]] | None:
    import httpx

    from llmbench.backends.managed_server import parse_prometheus

    root = base_url.rstrip("/").removesuffix("/v1")
    try:
        response = httpx.get(root + "/metrics", timeout=timeout_s)
    except httpx.HTTPError:
        return None
    return parse_prometheus(response.text) if response.status_code == 200 else None


def server_state(base_url: str, timeout_s: float = 10.0) -> PrefixCacheState:
    """What a server's /metrics says (vLLM's `cache_config_info` label `enable_prefix_caching`)."""
    samples = _server_samples(base_url, timeout_s)
    if samples is None:
        return PrefixCacheState(None, False, "the server has no /metrics")
    flags = {labels.get("enable_prefix_caching") for labels, _ in samples.get(_CACHE_INFO, [])}
    if flags in ({"True"}, {"False"}):
        return PrefixCacheState(flags == {"True"}, False, "the server's /metrics (cache_config_info)")
    return PrefixCacheState(None, False, "the server's /metrics do not say")


def server_counters(base_url: str, timeout_s: float = 10.0) -> PrefixCacheCounters | None:
    """vLLM's prefix cache counters (tokens), summed over the server's engines; None where it has none."""
    samples = _server_samples(base_url, timeout_s)
    if samples is None or _QUERIES not in samples or _HITS not in samples:
        return None
    return PrefixCacheCounters(
        queried_tokens=sum(v for _, v in samples[_QUERIES]),
        hit_tokens=sum(v for _, v in samples[_HITS]),
        source="the server's /metrics (prefix_cache_queries, prefix_cache_hits)",
    )
