"""Ctrl-C is counted by llmbench itself, so one that Python drops inside a finaliser still stops the run."""

from __future__ import annotations

import os
import signal
import time

import pytest

from llmbench.run import interrupts


class RaisesInItsFinaliser:
    """An object whose `__del__` is running when Ctrl-C arrives (as a regex cache's did in a real run)."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs here: its KeyboardInterrupt is printed and dropped by Python


def test_an_interrupt_dropped_inside_a_finaliser_is_still_honoured() -> None:
    with interrupts.handling():
        RaisesInItsFinaliser()  # collected at once
        assert interrupts.requested()
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()
    assert not interrupts.requested()  # counted for that command only
    interrupts.check()


def test_no_interrupt_no_stop_and_the_handler_is_restored() -> None:
    before = signal.getsignal(signal.SIGINT)
    with interrupts.handling():
        assert not interrupts.requested()
        interrupts.check()
    assert signal.getsignal(signal.SIGINT) is before


def test_a_second_ctrl_c_interrupts_again() -> None:
    with interrupts.handling():
        for _ in range(2):
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)
