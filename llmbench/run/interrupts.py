"""Ctrl-C that is never lost.

Python raises KeyboardInterrupt wherever the main thread happens to be, and when that is a finaliser
(`__del__` of some library's object, run by the garbage collector) the exception is printed and
dropped: the run would go on as if nothing had happened. So the CLI counts the signal itself, and the
runner checks the count at safe points (after each completion, between sweep points and tasks),
raising the interrupt there if the first one was swallowed. A second Ctrl-C interrupts at once.

A run's `--deadline` is a Ctrl-C that a timer presses: the run stops where and as Ctrl-C stops it.
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
_deadline: Deadline | None = None  # the run's deadline while one runs


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
    """Raise KeyboardInterrupt if Ctrl-C was pressed (or the deadline passed): a safe point to stop at."""
    if _received or (_deadline is not None and _deadline.passed):
        raise KeyboardInterrupt


class Deadline:
    """A run's `--deadline`: once `seconds` have passed, SIGINT to the main thread (which wakes it from a
    blocking wait) stops the run as Ctrl-C would; a run on another thread stops at its next `check`."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.passed = False
        self._timer: threading.Timer | None = None

    def __enter__(self) -> Deadline:
        global _deadline
        if self.seconds is not None:
            self._timer = threading.Timer(self.seconds, self._time_up, (threading.current_thread(),))
            self._timer.daemon = True
            self._timer.start()
            _deadline = self
        return self

    def __exit__(self, *exc: object) -> None:
        global _deadline
        if self._timer is not None:
            self._timer.cancel()
        if _deadline is self:
            _deadline = None

    def _time_up(self, runner: threading.Thread) -> None:
        self.passed = True
        main = threading.main_thread()
        if runner is main and main.ident is not None and hasattr(signal, "pthread_kill"):
            signal.pthread_kill(main.ident, signal.SIGINT)


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
