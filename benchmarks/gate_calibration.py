"""How often the regression gate cries wolf, and how soon it catches what it is for, on real repeat noise.

The noise is measured, not assumed: benchmarks/fixtures/gate_calibration_noise.json holds the sweep figures
of repeats of one commit (tiny-qwen2 through vLLM on a 2-core CPU host, benchmarks/gate_calibration.yaml,
one seed each). Each simulated night is one of those real runs, so every figure moves together as it did;
its points carry the suite's request counts (6 and 12), too few for a p90, which the gate withholds.
The verdicts are llmbench's own: `llmbench.analysis.gate.gate_report` with configs/gates.yaml, candidates of
repeats merged by `llmbench.analysis.repeats.merge`, exactly as `llmbench compare --fail-on-regression` does.

- A/A, nightly: a pinned baseline, the good nights (7, or what the fixture allows) and tonight, distinct
  real runs drawn at random. A/A accuracy: the first night after 7 good ones, verdict noise only (half as
  many trials as the A/A nights: a rate near alpha needs a few hundred to be told from it).
- A/A, repeats: a pinned baseline and tonight merged from 3 repeats, no history (bands from the repeats).
- 5% TTFT: after 7 good nights every night's TTFT (p50 and p90, every point) is 5% slower; nights to catch it.
- 3-point accuracy drop: a GSM8K-like task at the math suite's sample size (20) and the full set's (1319).
  Verdict noise between nights is a flip rate (FLIP_RATE, assumed: greedy vLLM on this host flipped none).
- Drift: after 7 good nights TTFT grows 3% a night; the night it first fails (the workflow's loop: a
  passing night joins the good nights). A change counts as caught when the changed figure fails.

Run: .venv/bin/python benchmarks/gate_calibration.py [--trials 400] [--small] [--drop-seed N]
     [--record RESULTS_DIR]
`--record DIR` rewrites the fixture from the results files in DIR (runs of the calibration suite).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from llmbench.analysis.figures import POINT_IDENTITY
from llmbench.analysis.gate import GateThresholds, gate_report, load_thresholds
from llmbench.analysis.repeats import merge
from llmbench.results.schema import Distribution, Performance, PerfPoint, RunResult, SampleRecord, TaskResult
from llmbench.run.aggregate import suite_score
from llmbench.scoring.stats import summarize

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "fixtures" / "gate_calibration_noise.json"
FIGURES = ("ttft_ms p50", "ttft_ms p90", "tpot_ms p50", "output_tokens_per_s", "goodput_per_s")
NIGHTS = 7  # the good nights of configs/gates.yaml's window
FLIP_RATE = 0.02  # share of a night's verdicts that flip, each way, against another night of the same commit
ACCURACY = 0.6  # the quality task's accuracy before the drop
MAX_NIGHTS = 14  # nights a step or drift has to be caught in


# --- the fixture -------------------------------------------------------------------------------------------


def record(results_dir: Path) -> dict[str, Any]:
    """The fixture from the calibration suite's results files in `results_dir`: each run's sweep figures."""
    runs = sorted(
        (json.loads(p.read_text()) for p in results_dir.glob("*.json")), key=lambda r: r["created_at"]
    )
    points = [{k: p.get(k) for k in POINT_IDENTITY} for p in runs[0]["performance"]["sweep"]]
    nights = []
    for run in runs:
        values = []
        for p in run["performance"]["sweep"]:
            fig = {
                "ttft_ms p50": p["ttft_ms"]["p50"],
                "ttft_ms p90": p["ttft_ms"]["p90"],
                "tpot_ms p50": p["tpot_ms"]["p50"],
                "output_tokens_per_s": p["output_tokens_per_s"],
                "goodput_per_s": p.get("goodput_per_s"),
            }
            values.append({k: round(v, 4) for k, v in fig.items() if v is not None})
        nights.append({"seed": run["settings"]["seed"], "created_at": run["created_at"], "points": values})
    first = runs[0]
    return {
        "what": "sweep figures of repeats of one commit, one seed each (benchmarks/gate_calibration.py)",
        "model": first["model_name"],
        "backend": f"{first['backend']['backend']} {first['backend']['extra'].get('vllm', '')} on CPU",
        "suite": "benchmarks/gate_calibration.yaml",
        "host": "2 CPU cores shared with other work",
        "points": points,
        "runs": nights,
    }


# --- runs built from the fixture ---------------------------------------------------------------------------


def requests_per_point() -> dict[str, int]:
    """The measured requests of each task's points in the calibration suite (6 and 12): as few as that, a
    p90 is withheld from the gate (`llmbench.analysis.significance.percentile_shortfall`)."""
    suite = yaml.safe_load((HERE / "gate_calibration.yaml").read_text())
    return {t["name"]: t["perf"]["requests_per_point"] for t in suite["tasks"]}


REQUESTS = requests_per_point()


def perf_run(noise: dict[str, Any], night: dict[str, Any], run_id: str, day: int, slower: float) -> RunResult:
    """A perf run with one real night's figures, its latencies `slower` times longer (throughput shorter)."""
    sweep = []
    for ident, fig in zip(noise["points"], night["points"], strict=True):
        ttft = [fig["ttft_ms p50"] * slower, fig["ttft_ms p90"] * slower]
        n = REQUESTS[ident["task"]]
        sweep.append(
            PerfPoint(
                **ident,
                n_requests=n,
                ttft_ms=Distribution(
                    mean=ttft[0], p50=ttft[0], p90=ttft[1], p99=ttft[1], min=ttft[0], max=ttft[1], n=n
                ),
                tpot_ms=_flat(fig["tpot_ms p50"], n),
                output_tokens_per_s=fig["output_tokens_per_s"],
                goodput_per_s=fig.get("goodput_per_s"),
            )
        )
    return _run(run_id, day, night["seed"], "perf", Performance(sweep=sweep), [], [])


def _flat(value: float, n: int) -> Distribution:
    return Distribution(mean=value, p50=value, p90=value, p99=value, min=value, max=value, n=n)


def _run(
    run_id: str,
    day: int,
    seed: int,
    suite: str,
    perf: Performance,
    tasks: list[TaskResult],
    samples: list[Any],
) -> RunResult:
    return RunResult(
        run_id=run_id,
        created_at=f"2026-{1 + day // 28:02d}-{1 + day % 28:02d}T02:00:00+00:00",
        llmbench_version="0.1.0",
        model={"name": "tiny-qwen2"},
        model_name="tiny-qwen2",
        backend={"backend": "vllm", "model": "tiny-qwen2", "measures_model": True},
        suite={"name": suite},
        suite_name=suite,
        suite_hash="calibration",
        settings={"seed": seed},
        tasks=tasks,
        suite_score=suite_score(tasks) if tasks else None,
        performance=perf,
        samples=samples,
    )


def quality_run(verdicts: Sequence[int], run_id: str, day: int, seed: int) -> RunResult:
    """A one-task math run with these per-sample verdicts."""
    samples = [
        SampleRecord(task="gsm8k", id=f"q{i}", score=float(v), status="correct" if v else "wrong")
        for i, v in enumerate(verdicts)
    ]
    task = TaskResult(
        name="gsm8k",
        scorer="math",
        primary_metric="accuracy",
        metrics={"accuracy": summarize([float(v) for v in verdicts])},
        n_samples=len(verdicts),
    )
    return _run(run_id, day, seed, "math", Performance(), [task], samples)


def night_verdicts(truth: Sequence[int], rng: random.Random, drop: float) -> list[int]:
    """One night's verdicts: the truth with FLIP_RATE of them flipped each way and, with `drop`, that share
    of all samples turned from correct to wrong (in expectation)."""
    lose = drop / max(statistics.fmean(truth), 1e-9)
    out = []
    for v in truth:
        v = 1 - v if rng.random() < FLIP_RATE else v
        out.append(0 if v and rng.random() < lose else v)
    return out


# --- the scenarios -----------------------------------------------------------------------------------------


def aa_nightly(noise: dict[str, Any], t: GateThresholds, rng: random.Random) -> bool:
    """One A/A night on full history: pinned, the good nights (7, or as many as the fixture allows) and
    tonight are distinct real runs."""
    runs = rng.sample(noise["runs"], min(NIGHTS + 2, len(noise["runs"])))
    built = [perf_run(noise, n, f"n{i}", i, 1.0) for i, n in enumerate(runs)]
    return bool(gate_report(built[0], built[-1], t, built[1:-1]).regressions)


def aa_repeats(noise: dict[str, Any], t: GateThresholds, rng: random.Random) -> bool:
    """One A/A night of a candidate merged from 3 repeats, no history: bands from the repeats."""
    runs = rng.sample(noise["runs"], 4)
    base = perf_run(noise, runs[0], "base", 0, 1.0)
    reps = [perf_run(noise, n, f"r{i}", 1, 1.0) for i, n in enumerate(runs[1:])]
    return bool(gate_report(base, merge(reps), t, (), ((), reps)).regressions)


def nights_to_catch(make: Callable[[int], RunResult], t: GateThresholds, metric: str) -> int | None:
    """The workflow's loop: night 0 is pinned, a passing night joins the good nights; the first night after
    NIGHTS that fails on a figure named `metric*` (the changed one), counted from the first changed night
    (1), or None within MAX_NIGHTS."""
    pinned = make(0)
    good = [pinned]
    for day in range(1, NIGHTS + MAX_NIGHTS + 1):
        tonight = make(day)
        found = gate_report(pinned, tonight, t, good[-t.history.window :]).regressions
        if day > NIGHTS and any(r.metric.startswith(metric) for r in found):
            return day - NIGHTS
        if not found:  # a night that fails stays out of the good nights
            good.append(tonight)
    return None


def perf_change(
    noise: dict[str, Any], t: GateThresholds, rng: random.Random, slower: Callable[[int], float]
) -> int | None:
    """Nights of TTFT `slower(night)` times the real figures (each night a real run drawn at random)."""
    nights = [rng.choice(noise["runs"]) for _ in range(NIGHTS + MAX_NIGHTS + 1)]
    return nights_to_catch(lambda d: perf_run(noise, nights[d], f"n{d}", d, slower(d)), t, "ttft_ms")


def aa_accuracy(n: int, t: GateThresholds, rng: random.Random) -> bool:
    """One A/A night of a task of `n` samples: pinned, 7 good nights and tonight, verdict noise only."""
    truth = [int(rng.random() < ACCURACY) for _ in range(n)]
    runs = [quality_run(night_verdicts(truth, rng, 0.0), f"q{d}", d, d) for d in range(NIGHTS + 2)]
    return bool(gate_report(runs[0], runs[-1], t, runs[1:-1]).regressions)


def accuracy_drop(n: int, t: GateThresholds, rng: random.Random, drop: float) -> int | None:
    truth = [int(rng.random() < ACCURACY) for _ in range(n)]
    verdicts = [
        night_verdicts(truth, rng, drop if d > NIGHTS else 0.0) for d in range(NIGHTS + MAX_NIGHTS + 1)
    ]
    return nights_to_catch(lambda d: quality_run(verdicts[d], f"q{d}", d, d), t, "accuracy")


# --- the table ---------------------------------------------------------------------------------------------


def caught(results: Sequence[int | None], within: int = NIGHTS) -> str:
    hits = sorted(r for r in results if r is not None and r <= within)
    median = f"{statistics.median(hits):g}" if hits else "-"
    return f"{len(hits) / len(results):.0%} within {within} nights (median night {median})"


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.record:
        FIXTURE.write_text(json.dumps(record(args.record), indent=1) + "\n")
        print(f"fixture: {FIXTURE}")
        return
    noise = json.loads(FIXTURE.read_text())
    noise["runs"] = [r for r in noise["runs"] if r["seed"] not in args.drop_seed]
    t = load_thresholds()
    tight = t.model_copy(update={"performance": {**t.performance, "ttft_ms p50": 0.03, "ttft_ms p90": 0.03}})
    trials = 30 if args.small else args.trials
    rng = random.Random(args.seed)
    start = time.perf_counter()
    rows = [("scenario", "config", "trials", "result")]
    for name, config in (("gates.yaml", t), ("TTFT floor 3%", tight)):
        aa = [aa_nightly(noise, config, rng) for _ in range(trials)]
        good = min(NIGHTS, len(noise["runs"]) - 2)
        rows.append((f"A/A nightly ({good} good nights)", name, str(trials), _rate(aa, config.alpha)))
        aa = [aa_repeats(noise, config, rng) for _ in range(trials)]
        rows.append(("A/A, candidate of 3 repeats", name, str(trials), _rate(aa, config.alpha)))
        few = max(10, trials // 4)
        step = [perf_change(noise, config, rng, _step) for _ in range(few)]
        rows.append(("TTFT +5% from night 8", name, str(few), caught(step)))
        drift = [perf_change(noise, config, rng, _drift) for _ in range(few)]
        rows.append(("TTFT +3% a night from night 8", name, str(few), caught(drift)))
    for n in (20,) if args.small else (20, 1319):
        few, nulls = (10, 10) if args.small else (max(10, trials // 8), max(10, trials // 2))
        aa = [aa_accuracy(n, t, rng) for _ in range(nulls)]
        rows.append((f"A/A accuracy, n={n}", "gates.yaml", str(nulls), _rate(aa, t.alpha)))
        drop = [accuracy_drop(n, t, rng, 0.03) for _ in range(few)]
        rows.append((f"accuracy -3 points, n={n}", "gates.yaml", str(few), caught(drop)))
    print(_markdown(rows))
    print(f"\n{len(noise['runs'])} real runs, seed {args.seed}, {time.perf_counter() - start:.0f} s")


def _step(night: int) -> float:
    return 1.05 if night > NIGHTS else 1.0


def _drift(night: int) -> float:
    return 1.03 ** max(0, night - NIGHTS)


def _rate(alarms: Sequence[bool], alpha: float) -> str:
    rate = sum(alarms) / len(alarms)
    return f"false alarms {rate:.1%} ({sum(alarms)}/{len(alarms)}; alpha {alpha})"


def _markdown(rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(r) + " |" for r in rows]
    lines.insert(1, "|" + "---|" * len(rows[0]))
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=400, help="A/A nights per config (changes: a quarter)")
    parser.add_argument("--small", action="store_true", help="30 trials, n=20 only: a smoke test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--drop-seed", type=int, action="append", default=[], help="leave the fixture's run of this seed out"
    )
    parser.add_argument("--record", type=Path, help="write the fixture from the results files in this folder")
    return parser


if __name__ == "__main__":
    main()
