"""Plots for the HTML report, drawn with matplotlib (Agg) and returned as inline SVG with an id and alt text."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from typing import Any

from llmbench.analysis.compare import Comparison
from llmbench.analysis.perf_tables import SweepTable
from llmbench.errors import MissingDependencyError
from llmbench.results.schema import TaskResult

_LC_KEY = re.compile(r"^length=([^,]+),depth=([^,]+)$")


@dataclass
class Plot:
    """One figure: its DOM id, a one-line description (alt text) and the SVG markup."""

    id: str
    title: str
    svg: str


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise MissingDependencyError("matplotlib", "plots", purpose="plots in the HTML report") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def to_svg(fig: Any, plot_id: str, title: str) -> Plot:
    """Serialise a figure to SVG markup that can sit inside HTML: no XML prologue, an id, a title, a role."""
    plt = _pyplot()
    buf = io.StringIO()
    with plt.rc_context({"svg.hashsalt": plot_id, "svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text[text.index("<svg") :], flags=re.S)
    text = text.replace("<svg", f'<svg id="{escape(plot_id)}" role="img" aria-label="{escape(title)}"', 1)
    head_end = text.index(">") + 1
    return Plot(plot_id, title, text[:head_end] + f"<title>{escape(title)}</title>" + text[head_end:])


def new_figure(width: float = 7.0, height: float = 3.6) -> tuple[Any, Any]:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(width, height))
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    return fig, ax


def legend_outside(ax: Any) -> None:
    """The legend to the right of the axes, where it hides no bar or point however many runs there are."""
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)


def series_colour(j: int, k: int) -> Any:
    """Run j's colour, the same in every plot: ten distinct ones for up to ten runs, twenty beyond that."""
    return _pyplot().get_cmap("tab10" if k <= 10 else "tab20")(j % (10 if k <= 10 else 20))


def grouped_bars(present: list[list[int]]) -> tuple[float, dict[tuple[int, int], float]]:
    """Bar width and the x of each (group i, run j) for groups holding only the runs in `present[i]`.

    Each group is as wide as the runs it has, centred on its tick: runs of other suites leave no gaps.
    """
    width = 0.8 / max((len(js) for js in present), default=1)
    xs = {}
    for i, js in enumerate(present):
        left = i - width * len(js) / 2
        for slot, j in enumerate(js):
            xs[(i, j)] = left + width * (slot + 0.5)
    return width, xs


def mark_zero_bars(ax: Any, xs: list[float], ys: list[float]) -> None:
    """A bar of height 0 draws nothing: write a 0 where it stands, so a zero score is seen as one."""
    for x, y in zip(xs, ys, strict=True):
        if y == 0:
            ax.annotate(
                "0", (x, 0), ha="center", va="bottom", fontsize=6, xytext=(0, 1), textcoords="offset points"
            )


def task_scores(comparison: Comparison) -> Plot | None:
    """Grouped bars of each task's primary metric per model, with the 95% interval as error bars."""
    rows = [r for r in comparison.section("quality") if _is_primary(comparison, r.task, r.metric)]
    if not rows:
        return None
    fig, ax = new_figure(max(6.0, 1.1 * len(rows) + 2))
    k = len(comparison.columns)
    width, at = grouped_bars([[j for j in range(k) if r.cells[j] is not None] for r in rows])
    for j, label in enumerate(comparison.labels):
        xs, ys, err_lo, err_hi = [], [], [], []
        for i, row in enumerate(rows):
            m = row.cells[j]
            if m is None:
                continue
            xs.append(at[(i, j)])
            ys.append(m.value)
            err_lo.append(max(0.0, m.value - m.ci_low) if m.ci_low is not None else 0.0)
            err_hi.append(max(0.0, m.ci_high - m.value) if m.ci_high is not None else 0.0)
        if not xs:  # a run with none of these tasks has no entry in this plot's legend
            continue
        ax.bar(xs, ys, width, yerr=[err_lo, err_hi], capsize=3, label=label, color=series_colour(j, k))
        mark_zero_bars(ax, xs, ys)
    ax.set_xticks(range(len(rows)), [f"{r.task}\n{r.metric}" for r in rows], fontsize=8)
    score_axis(ax)
    ax.set_ylabel("score (95% CI)")
    legend_outside(ax)
    return to_svg(fig, "plot-task-scores", "Primary metric per task and model, with 95% confidence intervals")


def score_axis(ax: Any) -> None:
    """Scores from 0 (never below it, even where every bar is 0) to at least 1, their usual top."""
    low, high = ax.get_ylim()
    if low >= -1e-9 or all(p.get_height() >= 0 for p in ax.patches):
        ax.set_ylim(0, max(1.0, high))


def _is_primary(comparison: Comparison, task: str, metric: str) -> bool:
    for col in comparison.columns:
        t = col.run.task(task)
        if t is not None:
            return t.primary_metric == metric
    return False


def suite_overview(comparison: Comparison) -> Plot | None:
    """Weighted suite score per suite and model (grouped bars)."""
    rows = comparison.section("suite")
    if not rows:
        return None
    fig, ax = new_figure(max(5.0, 1.2 * len(rows) + 2), 3.2)
    k = len(comparison.columns)
    width, at = grouped_bars([[j for j in range(k) if r.cells[j] is not None] for r in rows])
    for j, label in enumerate(comparison.labels):
        pts = [(at[(i, j)], m.value) for i, r in enumerate(rows) if (m := r.cells[j]) is not None]
        if not pts:
            continue
        colour = series_colour(j, k)
        ax.bar([p[0] for p in pts], [p[1] for p in pts], width, label=label, color=colour)
        mark_zero_bars(ax, [p[0] for p in pts], [p[1] for p in pts])
    ax.set_xticks(range(len(rows)), [r.suite for r in rows])
    score_axis(ax)
    ax.set_ylabel("weighted suite score")
    legend_outside(ax)
    return to_svg(fig, "plot-suite-overview", "Weighted suite score per suite and model")


def sweep(table: SweepTable, labels: list[str], plot_id: str) -> Plot:
    """A line per model over a sweep's x values (input length or concurrency)."""
    fig, ax = new_figure()
    for k, label in enumerate(table.labels(labels)):
        pts = [(x, v[k]) for x, v in zip(table.xs, table.values, strict=True) if v[k] is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
    if len(table.xs) > 2 and table.xs[0] > 0 and table.xs[-1] / table.xs[0] >= 8:
        ax.set_xscale("log", base=2)
    ax.set_xticks(table.xs, [f"{x:g}" for x in table.xs])  # the settings swept: 1, 2, 4, never 1.5
    ax.minorticks_off()
    ax.set_xlabel(table.x_name.replace("_", " "))
    ax.set_ylabel(table.metric.replace("_", " "))
    ax.set_title(table.title, fontsize=9)
    legend_outside(ax)
    return to_svg(fig, plot_id, table.title)


def sweeps(comparison: Comparison) -> list[Plot]:
    names = {
        ("ttft_ms p50", "input_tokens"): "plot-ttft-vs-input",
        ("output_tokens_per_s", "input_tokens"): "plot-tps-vs-input",
        ("ttft_ms p50", "concurrency"): "plot-ttft-vs-concurrency",
        ("output_tokens_per_s", "concurrency"): "plot-throughput-vs-concurrency",
    }
    plots: list[Plot] = []
    seen: dict[str, int] = {}
    for table in comparison.sweeps:
        if len(table.xs) < 2:  # one point is not a curve; the table below shows it
            continue
        base = names[(table.metric, table.x_name)]
        seen[base] = seen.get(base, 0) + 1
        plot_id = base if seen[base] == 1 else f"{base}-{seen[base]}"
        plots.append(sweep(table, comparison.labels, plot_id))
    return plots


def peak_vram(comparison: Comparison) -> Plot | None:
    """Peak VRAM per model (horizontal bars)."""
    pts = [(c.label, c.peak_vram_mib) for c in comparison.cost if c.peak_vram_mib is not None]
    if not pts:
        return None
    fig, ax = new_figure(6.0, 0.5 * len(pts) + 1.2)
    ax.barh([p[0] for p in pts], [p[1] for p in pts], color="tab:purple")
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlabel("peak VRAM (MiB)")
    return to_svg(fig, "plot-peak-vram", "Peak VRAM per model in MiB")


def longctx_heatmaps(comparison: Comparison) -> list[Plot]:
    """Accuracy by context length x needle depth, one heat map per (task, model), from breakdown keys."""
    plt = _pyplot()
    plots = []
    tasks: dict[str, None] = {}
    for col in comparison.columns:
        for t in col.run.tasks:
            if any(_LC_KEY.match(k) for k in t.breakdown):
                tasks.setdefault(t.name, None)
    for task in tasks:
        cols = [c for c in comparison.columns if _has_grid(c.run.task(task))]
        fig, axes = plt.subplots(1, len(cols), figsize=(3.6 * len(cols) + 0.8, 3.2), squeeze=False)
        for ax, col in zip(axes[0], cols, strict=True):
            tr = col.run.task(task)
            assert tr is not None  # cols holds only runs that have the task
            grid = {
                (m.group(1), m.group(2)): v.get(tr.primary_metric)
                for k, v in tr.breakdown.items()
                if (m := _LC_KEY.match(k))
            }
            lengths = sorted({k[0] for k in grid}, key=_num_key)
            depths = sorted({k[1] for k in grid}, key=_num_key)
            data = [
                [mv.value if (mv := grid.get((ln, d))) is not None else float("nan") for ln in lengths]
                for d in depths
            ]
            image = ax.imshow(data, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
            ax.set_xticks(range(len(lengths)), lengths, fontsize=7, rotation=45)
            ax.set_yticks(range(len(depths)), depths, fontsize=7)
            ax.set_xlabel("context length (tokens)", fontsize=8)
            ax.set_ylabel("depth", fontsize=8)
            ax.set_title(col.label, fontsize=9)
        fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8)
        safe = re.sub(r"[^A-Za-z0-9_-]", "-", task)
        plots.append(
            to_svg(fig, f"plot-longctx-{safe}", f"{task}: accuracy by context length and depth per model")
        )
    return plots


def _has_grid(task: TaskResult | None) -> bool:
    return task is not None and any(_LC_KEY.match(k) for k in task.breakdown)


def _num_key(text: str) -> tuple[int, float, str]:
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def accuracy_vs_cost(comparison: Comparison) -> Plot | None:
    """Suite score against each known cost (energy per token, peak VRAM, the quality run's own TTFT p50), one
    panel per cost; the leaderboard's serving TTFT comes from perf sweeps, this one from the scored requests."""
    plt = _pyplot()
    axes_spec: list[tuple[str, Callable[[Any], float | None]]] = [
        ("energy per output token (J)", lambda c: c.energy_per_output_token_j),
        ("peak VRAM (MiB)", lambda c: c.peak_vram_mib),
        ("TTFT p50 in the quality run (ms)", lambda c: c.ttft_p50_ms),
    ]
    scored = [c for c in comparison.cost if c.suite_score is not None]
    panels = [(name, get) for name, get in axes_spec if any(get(c) is not None for c in scored)]
    if not scored or not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels) + 0.6, 3.2), squeeze=False)
    for ax, (name, get) in zip(axes[0], panels, strict=True):
        for i, c in enumerate(scored):
            if get(c) is not None:
                marker = "osD^v<>"[i // 10 % 7]  # colours repeat after ten: the marker tells those apart
                ax.scatter([get(c)], [c.suite_score], s=40, marker=marker, label=f"{c.label} ({c.suite})")
        ax.set_xlabel(name, fontsize=8)
        ax.set_ylabel("suite score", fontsize=8)
        ax.grid(alpha=0.3)
    legend_outside(axes[0][-1])
    return to_svg(
        fig,
        "plot-accuracy-vs-cost",
        "Suite score against energy, VRAM and latency in the quality run, per model",
    )


def all_plots(comparison: Comparison) -> list[Plot]:
    """Every plot the comparison has data for, in report order."""
    plots: list[Plot | None] = [suite_overview(comparison), task_scores(comparison)]
    plots += longctx_heatmaps(comparison)
    plots += sweeps(comparison)
    plots += [peak_vram(comparison), accuracy_vs_cost(comparison)]
    return [p for p in plots if p is not None]
