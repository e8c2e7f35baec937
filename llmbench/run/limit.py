"""`--limit N` on a perf block: at most N measured requests per repeat of each point, whatever makes them.

An ordinary sweep point sends `requests_per_point`; a shared-prefix point prefixes x requests per
prefix; a chat point conversations x turns; a trace point its records. The limit lowers what it must
and no more (a chat keeps its turns: fewer turns would be another workload), and each workload
point's note says what was cut, so a limited run never reads as the full one.
"""

from __future__ import annotations

from typing import Any

from llmbench.config.serving import MultiTurnWorkload, SharedPrefixWorkload, TraceWorkload
from llmbench.config.suite import PerfSweep


def limited(sweep: PerfSweep, limit: int | None) -> tuple[PerfSweep, str | None]:
    """The sweep with each point's requests capped at `limit`, and the note its workload points carry."""
    if limit is None:
        return sweep, None
    capped = sweep.model_copy(update={"requests_per_point": min(sweep.requests_per_point, limit)})
    w = sweep.workload
    update: dict[str, Any] = {}
    said = ""
    if isinstance(w, SharedPrefixWorkload) and w.prefixes * w.requests_per_prefix > limit:
        per_prefix = min(w.requests_per_prefix, max(1, limit // w.prefixes))
        prefixes = min(w.prefixes, max(1, limit // per_prefix))
        update = {"prefixes": prefixes, "requests_per_prefix": per_prefix}
        said = f"{prefixes} prefix(es) x {per_prefix} request(s), not {w.prefixes} x {w.requests_per_prefix}"
    elif isinstance(w, MultiTurnWorkload) and w.conversations * w.turns > limit:
        conversations = min(w.conversations, max(1, limit // w.turns))
        update = {"conversations": conversations}
        said = f"{conversations} conversation(s) of {w.turns} turns, not {w.conversations}"
    elif isinstance(w, TraceWorkload) and (w.max_requests is None or w.max_requests > limit):
        update = {"max_requests": limit}
        said = f"at most the first {limit} of the trace's requests"
    if not update:
        return capped, None
    assert w is not None
    return capped.model_copy(update={"workload": w.model_copy(update=update)}), f"--limit {limit}: {said}"
