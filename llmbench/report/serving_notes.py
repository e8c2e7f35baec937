"""One short line per serving-workload point for the sweep table: the workload, its cache and its turns."""

from __future__ import annotations

from llmbench.results.schema import PerfPoint


def workload_note(pt: PerfPoint) -> str:
    """E.g. "shared_prefix, cache on, hit 53%" or "multi_turn, TTFT p50/p90 ms by turn 59/61 > 62/70"."""
    bits: list[str] = []
    if pt.workload:
        bits.append(pt.workload)
    if pt.trace:
        bits.append(pt.trace)
    if pt.arrival_process and pt.arrival_process != "trace":
        gamma = pt.arrival_process == "gamma" and pt.burstiness is not None
        bits.append(f"{pt.arrival_process} arrivals" + (f" (burstiness {pt.burstiness:g})" if gamma else ""))
    if pt.workload and pt.prefix_caching is not None:
        bits.append(f"cache {'on' if pt.prefix_caching else 'off'}")
    if pt.prefix_cache_hit_rate is not None:
        bits.append(f"hit {pt.prefix_cache_hit_rate:.0%}")
    if pt.turns:
        steps = " > ".join(f"{t.ttft_ms.p50:.0f}/{t.ttft_ms.p90:.0f}" if t.ttft_ms else "-" for t in pt.turns)
        bits.append(f"TTFT p50/p90 ms by turn {steps}")
    if pt.note:
        bits.append(pt.note)
    return ", ".join(bits)
