"""The run's own sweep table shows a TTFT p99 only from enough requests: a p99 of 32 is their largest value."""

from __future__ import annotations

from rich.console import Console

from llmbench.analysis.significance import percentile_requests
from llmbench.report.summary import print_sweep
from llmbench.results.schema import PerfPoint
from llmbench.scoring.stats import distribution


def point(n: int) -> PerfPoint:
    values = [20.0 + i / n for i in range(n)]
    return PerfPoint(
        input_tokens=512, output_tokens=128, concurrency=1, n_requests=n, ttft_ms=distribution(values)
    )


def test_a_p99_of_too_few_requests_is_withheld_and_said_why() -> None:
    console = Console(record=True, width=200)
    few, many = point(32), point(percentile_requests(0.99))
    print_sweep([few, many], console)
    text = console.export_text()
    rows = [line for line in text.splitlines() if "512" in line]
    assert "—" in rows[0] and f"{few.ttft_ms.p99:.1f}" not in rows[0]  # type: ignore[union-attr]
    assert f"{many.ttft_ms.p99:.1f}" in rows[1]  # type: ignore[union-attr]
    assert f"fewer than {percentile_requests(0.99)} requests has no TTFT p99" in text
