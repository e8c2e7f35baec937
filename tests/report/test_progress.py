"""Progress outside a terminal is a line every few seconds with done/total and ETA; the summary says
where its timings come from, and shows none where nothing was generated."""

from __future__ import annotations

import io

from rich.console import Console

from llmbench.report.progress_bar import RichProgress
from llmbench.report.summary import print_run_summary, timing_source
from tests.factories import make_run


def log_console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=False, width=200), buffer


def test_outside_a_terminal_progress_is_periodic_lines_with_an_eta() -> None:
    console, buffer = log_console()
    with RichProgress(console, line_every_s=0.0) as progress:
        progress.task_started("gsm8k", total=4, done=1)
        for _ in range(3):
            progress.advance()
        progress.task_finished("gsm8k")
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "gsm8k: 3 requests to run (1 already done)"
    assert lines[1].startswith("gsm8k: 2/4 (50%), ") and ", eta " in lines[1]
    assert lines[3].startswith("gsm8k: 4/4 (100%)") and "eta" not in lines[3]
    assert lines[-1].endswith(", done")


def test_quiet_prints_nothing_at_all() -> None:
    console, buffer = log_console()
    with RichProgress(console, enabled=False, line_every_s=0.0) as progress:
        progress.task_started("gsm8k", total=2, done=0)
        progress.advance()
        progress.message("performance sweep 'perf'")
        progress.advance()
        progress.task_finished("gsm8k")
    assert buffer.getvalue() == ""


def test_the_summary_says_where_timings_come_from() -> None:
    run = make_run("m", {"t": [1.0, 0.0]})
    run.backend.device = "cpu"
    for s in run.samples:
        s.batch_size = 2
    assert timing_source(run) == "cpu, batches of up to 2"
    console, buffer = log_console()
    print_run_summary(run, console)
    assert "timed on cpu, batches of up to 2" in buffer.getvalue()


def test_the_summary_shows_no_timings_for_a_backend_that_generates_nothing() -> None:
    run = make_run("m", {"t": [1.0]})
    run.backend.device = "none"
    console, buffer = log_console()
    print_run_summary(run, console)
    text = buffer.getvalue()
    assert "timings: none" in text and "TTFT" not in text
