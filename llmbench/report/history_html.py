"""A folder's history as one self-contained HTML page (`llmbench history DIR --html FILE`): each figure the
gate judges, plotted over the runs with the noise band of the last nights and the limit the latest must
stay inside, then the runs; inline SVG, opens offline in any browser."""

from __future__ import annotations

from datetime import datetime, timezone
from html import escape

from llmbench import __version__
from llmbench.analysis.history import GatedTrend, History
from llmbench.errors import MissingDependencyError
from llmbench.report.plots import Plot, new_figure, to_svg

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:1rem}
figure{margin:0}figure svg{max-width:100%;height:auto}figcaption{color:#555;font-size:.9em}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}th{background:#f4f4f4}td.l,th.l{text-align:left}
.outside{color:#b3261e;font-weight:700}.note{background:#fff8e1;border-left:4px solid #f4b400;padding:.5rem 1rem}
"""
BAND = "#1a73e8"
OUTSIDE = "#b3261e"


def gated_plot(g: GatedTrend, alpha: float, plot_id: str) -> Plot:
    """One gated figure over the runs: its values, the median and noise band of the runs the band was
    taken over (shaded), the one-sided limit at `alpha` (dashed) and the latest value, red when outside."""
    fig, ax = new_figure(5.6, 2.6)
    xs = [i for i, v in enumerate(g.values) if v is not None]
    ys = [v for v in g.values if v is not None]
    ax.plot(xs, ys, marker="o", markersize=3.5, color="#444", linewidth=1.2, label="value")
    limit = g.limit(alpha)
    if g.band is not None and limit is not None:
        span, median = [g.band_runs[0], len(g.values) - 1], g.band.median
        if g.band.relative:  # the band is symmetric on a log scale
            ratio = max(limit / median, median / limit)
            lo, hi = median / ratio, median * ratio
        else:
            lo, hi = median - abs(limit - median), median + abs(limit - median)
        ax.fill_between(span, lo, hi, color=BAND, alpha=0.15, linewidth=0, label="noise band")
        ax.plot(span, [median, median], color=BAND, linewidth=1.2, label="median")
        ax.plot(
            span, [limit, limit], color=OUTSIDE, linestyle="--", linewidth=1, label=f"limit (alpha {alpha:g})"
        )
    if ys and g.outside(alpha):
        ax.plot([xs[-1]], [ys[-1]], marker="o", markersize=7, color=OUTSIDE, linestyle="none")
    ticks = list(range(len(g.values)))
    step = max(1, len(ticks) // 8)
    ax.set_xticks(ticks[::step], [g.dates[i][5:10] if i < len(g.dates) else str(i) for i in ticks[::step]])
    ax.tick_params(labelsize=7)
    ax.set_ylabel(g.metric.replace("_", " "), fontsize=8)
    title = f"{g.where} · {g.metric}"
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return to_svg(fig, plot_id, f"{title}: {_caption(g, alpha)}")


def _caption(g: GatedTrend, alpha: float) -> str:
    if g.band is None:
        return "fewer than 3 runs: no noise band"
    width = g.band.half_width(alpha, "recent")
    shown = f"±{width:.1%}" if g.band.relative else f"±{width:.3f}"
    verdict = "the latest is OUTSIDE it" if g.outside(alpha) else "the latest is inside it"
    return f"median {g.band.median:.4g}, noise band {shown} from {g.band.n} runs; {verdict}"


def render_history_html(h: History) -> str:
    """The page: the gated figures' plots (the trend the gate sees), then the runs with the chosen metric."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>llmbench history: {escape(str(h.directory))}</title><style>{CSS}</style></head><body>",
        f"<h1>History of {escape(str(h.directory))}</h1>",
        f"<p>{len(h.runs)} run(s); generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by llmbench "
        f"{escape(__version__)}. Each gated figure over the runs of the newest run's model, suite and "
        "backend: the shaded band is the noise of the last runs around their median (blue line), the "
        f"dashed line the limit one-sided at alpha {h.alpha:g} before Holm's correction; a red point is "
        "outside it. Latency is gated at perf sweep points only.</p>",
        '<h2 id="section-gated">Gated figures</h2>',
        _plots(h),
        '<h2 id="section-runs">Runs</h2>',
        _runs_table(h),
    ]
    parts += [f'<p class="note">skipped: {escape(line)}</p>' for line in h.skipped]
    parts.append("</body></html>")
    return "\n".join(parts)


def _plots(h: History) -> str:
    if not h.gated:
        return '<p class="note">No gated figure in these runs.</p>'
    try:
        plots = [gated_plot(g, h.alpha, f"plot-gated-{i}") for i, g in enumerate(h.gated)]
    except MissingDependencyError as exc:
        return f'<p class="note">Plots are not included: {escape(str(exc))}.</p>'
    figures = "".join(f"<figure>{p.svg}<figcaption>{escape(p.title)}</figcaption></figure>" for p in plots)
    return f'<div class="grid">{figures}</div>'


def _runs_table(h: History) -> str:
    head = "".join(f'<th class="l">{c}</th>' for c in ("created", "model", "suite", "run id"))
    head += f"<th>{escape(h.metric)}</th><th>95% CI</th><th>n</th>"
    rows = []
    for point, run in zip(h.trend, h.runs, strict=True):
        v = point.value
        ci = (
            f"[{v.ci_low:.3f}, {v.ci_high:.3f}]"
            if v and v.ci_low is not None and v.ci_high is not None
            else ""
        )
        cells = [run.created_at, run.model_name, run.suite_name, run.run_id]
        row = "".join(f'<td class="l">{escape(c)}</td>' for c in cells)
        row += f"<td>{f'{v.value:.4g}' if v else '-'}</td><td>{ci}</td><td>{v.n if v else ''}</td>"
        rows.append(f"<tr>{row}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
