"""The processes of this run (the harness and everything it started: engine cores, workers, a managed
server), so GPU memory can be attributed to the run rather than to whatever else shares the device."""

from __future__ import annotations

import os
import time


class ProcessTree:
    """This process and its descendants, refreshed at most every `refresh_s` (listing them costs ms)."""

    def __init__(self, refresh_s: float = 1.0) -> None:
        self.refresh_s = refresh_s
        self._pids: frozenset[int] = frozenset({os.getpid()})
        self._at = float("-inf")

    def pids(self) -> frozenset[int]:
        now = time.monotonic()
        if now - self._at >= self.refresh_s:
            self._pids = _descendants(os.getpid())
            self._at = now
        return self._pids


def _descendants(pid: int) -> frozenset[int]:
    try:
        import psutil

        return frozenset({pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))})
    except Exception:  # psutil missing or a process gone mid-walk: the harness itself still counts
        return frozenset({pid})
