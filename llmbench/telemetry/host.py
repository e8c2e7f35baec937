"""How busy the host is while timings are taken: CPU threads, usable CPUs, the load average, niceness.

On a busy 2-core host, torch's default thread count made a decode step 704 ms instead of 53 ms with
one thread: timings taken while the host runs more work than it has cores measure the contention, not
the model. The run records these figures and warns when the host was oversubscribed.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask), which a container may set below os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_average() -> tuple[float, float, float] | None:
    """The 1, 5 and 15 minute load averages (runnable and waiting tasks); None where the OS has none."""
    try:
        return os.getloadavg()
    except (AttributeError, OSError):
        return None


def torch_threads() -> int | None:
    """Intra-op threads of an already-imported torch; None when torch is not loaded."""
    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else None


def niceness() -> int | None:
    """This process's nice value (0 normal; Ray starts its workers at 15 unless told otherwise)."""
    try:
        return os.nice(0)
    except (AttributeError, OSError):
        return None


def set_torch_threads(threads: int | None) -> None:
    """Pin torch's intra-op threads (None leaves torch's default: one per core it sees)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


@dataclass
class LoadWatch:
    """The highest 1-minute load average seen at the marks of the timed windows."""

    cpus: int = field(default_factory=usable_cpus)
    peak_load_1m: float | None = None

    def mark(self) -> None:
        load = load_average()
        if load is not None:
            self.peak_load_1m = max(load[0], self.peak_load_1m or 0.0)

    def facts(self) -> dict[str, Any]:
        """What goes into the results' environment."""
        load = load_average()
        return {
            "usable_cpus": self.cpus,
            "torch_threads": torch_threads(),
            "load_avg": [round(x, 2) for x in load] if load is not None else None,
            "peak_load_1m": round(self.peak_load_1m, 2) if self.peak_load_1m is not None else None,
            "niceness": niceness(),
        }

    def warnings(self) -> list[str]:
        """Why the timings may measure contention rather than the model; empty when the host kept up.

        The load average counts this run's own busy threads too, so it says the host was
        oversubscribed only when it exceeds the CPUs this process may use.
        """
        out = []
        if self.peak_load_1m is not None and self.peak_load_1m > self.cpus:
            out.append(
                f"the host was oversubscribed while timings were taken (1-minute load {self.peak_load_1m:.1f} "
                f"on {self.cpus} CPU(s)): latencies and throughput include waiting for a CPU"
            )
        nice = niceness()
        if nice and self.peak_load_1m is not None and self.peak_load_1m > self.cpus:
            out.append(
                f"this run had niceness {nice} on a busy host: other work ran first "
                "(a Ray cluster started with RAY_worker_niceness=0 runs its workers at normal priority)"
            )
        threads = torch_threads()
        if threads is not None and threads > self.cpus:
            out.append(
                f"torch uses {threads} threads on {self.cpus} usable CPU(s); set `threads` in the model "
                "config or --threads"
            )
        return out
