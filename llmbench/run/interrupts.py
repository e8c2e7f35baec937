"""Ctrl-C that is never lost.

Python raises KeyboardInterrupt wherever the main thread happens to be, and when that is a finaliser
(`__del__` of some library's object, run by the garbage collector) the exception is printed and
dropped: the run would go on as if nothing had happened. So the CLI counts the signal itself, and the
runner checks the count at safe points (after each completion, between sweep points and tasks),
raising the interrupt there if the first one was swallowed. A second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

_received = 0


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    global _received
    _received += 1
    if _received == 1:
        raise KeyboardInterrupt
    signal.signal(signal.SIGINT, signal.default_int_handler)
    raise KeyboardInterrupt


def requested() -> bool:
    """Whether Ctrl-C was pressed since `handling()` began."""
    return _received > 0


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed: a safe point to stop at."""
    if _received:
        raise KeyboardInterrupt


@contextmanager
def handling() -> Iterator[None]:
    """Count Ctrl-C for the duration (main thread only; elsewhere Python's own handling stays)."""
    global _received
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received = 0
    previous = signal.signal(signal.SIGINT, _on_sigint)
    previous_hook = sys.unraisablehook

    def quiet_about_interrupts(info: Any) -> None:  # counted above; its traceback would only confuse
        if not isinstance(info.exc_value, KeyboardInterrupt):
            previous_hook(info)

    sys.unraisablehook = quiet_about_interrupts
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        sys.unraisablehook = previous_hook
        _received = 0
