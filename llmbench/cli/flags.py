"""The CLI's options, declared once as Annotated types and shared by the commands that take them.

To add an option to `llmbench run`: declare it here, and give `run` a parameter of the same name as the
`RunOptions` field it fills (the command passes every such parameter on by name).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmbench.errors import UserInputError

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="alias from configs/models, a model directory, a config YAML or a Hugging Face id",
    ),
]
BackendOpt = Annotated[
    str | None,
    typer.Option(
        "--backend", "-b", help="transformers | vllm | openai | reference (default: the model config's)"
    ),
]
BaseUrlOpt = Annotated[
    str | None, typer.Option("--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
]
ApiKeyEnvOpt = Annotated[
    str | None,
    typer.Option("--api-key-env", help="name of the environment variable that holds the API key"),
]
FirstTokenTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--first-token-timeout",
        "--first-byte-timeout",
        min=0.001,
        max=86400,
        help="seconds an API server may take to send an answer's first token; keep-alives and comments are "
        "none (default: the model config's, 120)",
    ),
]
RequestTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--request-timeout",
        min=0.001,
        max=86400,
        help="seconds one request to an API server may take in all, its retries included (default 300)",
    ),
]
IdleTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--idle-timeout",
        min=0.001,
        max=86400,
        help="seconds an API server may stay silent between two chunks of an answer (default 30)",
    ),
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads",
        min=1,
        max=4096,
        help="torch's CPU threads (Transformers backend; default: the model config's, else one per core)",
    ),
]
LimitOpt = Annotated[
    int | None, typer.Option("--limit", "-n", min=1, max=(1 << 63) - 1, help="at most N samples per task")
]
TaskOpt = Annotated[list[str] | None, typer.Option("--task", "-t", help="run only this task (repeatable)")]
RunModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="alias from configs/models, a model directory, a config YAML, a Hugging Face id, "
        "or with --base-url the name the server serves (not needed with --resume)",
    ),
]
RunSeedOpt = Annotated[
    int | None,
    typer.Option(
        "--seed", min=0, max=(1 << 32) - 1, help="base seed for sampling and generated data [default: 0]"
    ),
]
MaxNewTokensOpt = Annotated[
    int | None,
    typer.Option("--max-new-tokens", min=1, help="cap every task's output length (quick runs); recorded"),
]
SeedOpt = Annotated[
    int, typer.Option("--seed", min=0, max=(1 << 32) - 1, help="base seed for sampling and generated data")
]
FormatOpt = Annotated[
    str, typer.Option("--format", "-f", help="table | markdown | csv | json | html | vllm-bench")
]
ResultsArg = Annotated[
    list[Path], typer.Argument(help="results files (JSON) or folders of them", show_default=False)
]
AllRunsOpt = Annotated[
    bool,
    typer.Option("--all-runs", help="every run, not only the latest of each model, backend and suite"),
]
KeepRepeatsOpt = Annotated[
    bool,
    typer.Option(
        "--keep-repeats", help="one column per file, even for runs that repeat each other with another seed"
    ),
]

# Options of `doctor`.
DoctorJsonOpt = Annotated[bool, typer.Option("--json", help="the report as JSON on standard output")]
DeepOpt = Annotated[
    bool, typer.Option("--deep", help="import every library (vLLM takes seconds) instead of reading versions")
]

# Options of `run` (and of commands that run suites).
OutputOpt = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="results file (default results/<suite>-<model>-<time>.json)"),
]
ResultsDirOpt = Annotated[Path, typer.Option("--results-dir", help="where results files go")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="continue an interrupted run from its journal")]
RunIdOpt = Annotated[
    str | None,
    typer.Option("--run-id", help="name the run; an unfinished run of that name continues where it stopped"),
]
DeadlineOpt = Annotated[
    float | None,
    typer.Option(
        "--deadline",
        min=0.001,
        max=31_536_000,
        help="seconds the whole run may take; then it stops as at Ctrl-C and says how to --resume the rest",
    ),
]
MaxCostOpt = Annotated[
    float | None,
    typer.Option(
        "--max-cost",
        min=0,
        max=1e9,
        help="US dollars this run may spend at the model's per-token prices; it stops before the next request "
        "could pass them and says how to --resume the rest",
    ),
]
FreshOpt = Annotated[bool, typer.Option("--fresh", help="discard an unfinished run's journal and start over")]
WarmupOpt = Annotated[
    bool, typer.Option("--warmup/--no-warmup", help="one untimed request before the first timed one")
]
CacheOpt = Annotated[
    bool,
    typer.Option(
        "--cache/--no-cache",
        help="answer repeated quality requests from the generation cache, and keep new answers in it "
        "(never for performance measurements); see `llmbench cache`",
    ),
]
OlderThanDaysOpt = Annotated[
    float | None,
    typer.Option(
        "--older-than-days", min=0, max=1e6, help="remove entries written more than this many days ago"
    ),
]
MissingModelsOpt = Annotated[
    bool,
    typer.Option(
        "--missing-models",
        help="remove entries of models whose files are gone from this host or have changed",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="change every task's config, e.g. generation.max_new_tokens=64 or generation.temperature=0 (repeatable)",
    ),
]
RunQuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="print nothing but errors and the results file's path")
]
RepeatOpt = Annotated[
    int, typer.Option("--repeat", min=1, max=10_000, help="run N times and report the greedy flip rate")
]
BatchSizesOpt = Annotated[
    str | None, typer.Option("--batch-sizes", help="e.g. 1,16: one run per batch size, flip rate across them")
]

# Options of single commands.
SuiteArg = Annotated[Path, typer.Argument(help="suite YAML, e.g. suites/math.yaml")]
RunSuiteArg = Annotated[
    Path | None, typer.Argument(help="suite YAML, e.g. suites/math.yaml (not needed with --resume)")
]
StudyArg = Annotated[Path, typer.Argument(help="study YAML, e.g. studies/demo.yaml")]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="print the plan (cells, GPUs, placement, what is done); run nothing")
]
GpusOpt = Annotated[
    int | None,
    typer.Option(
        "--gpus", min=0, max=4096, help="GPUs of the host (default: detected); fake ids on a CPU host"
    ),
]
RayOpt = Annotated[
    str | None, typer.Option("--ray", help="run on a Ray cluster: its address, or 'local' to start one")
]
StudyDirOpt = Annotated[
    Path | None, typer.Option("--results-dir", help="where cells write (default results/study/<name>)")
]
MaxVramOpt = Annotated[float | None, typer.Option("--max-vram", help="constraint: peak VRAM in MiB")]
MaxTtftOpt = Annotated[float | None, typer.Option("--max-ttft-ms", help="constraint: TTFT p50 at 2K in ms")]
MinTokensOpt = Annotated[
    float | None, typer.Option("--min-tokens-per-s", help="constraint: output tokens/s at concurrency 1")
]
BoardMarkdownOpt = Annotated[
    Path | None, typer.Option("--markdown", help="also write the leaderboard as Markdown")
]
BoardHtmlOpt = Annotated[
    Path | None, typer.Option("--html", help="also write the HTML report of the cells, leaderboard first")
]
SuiteOrFilesArg = Annotated[
    list[Path], typer.Argument(help="a suite YAML (runs it on each backend) or two results files")
]
ParityModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="model to run (with a suite)")]
BackendsOpt = Annotated[str, typer.Option("--backends", help="two backends, comma-separated")]
ParityDirOpt = Annotated[Path, typer.Option("--results-dir", help="where the two results files go")]
BaselineOpt = Annotated[
    Path | None, typer.Option("--baseline", help="reference run: shown first, with deltas")
]
FailOnRegressionOpt = Annotated[
    bool, typer.Option("--fail-on-regression", help="exit 1 on a significant regression vs --baseline")
]
GateConfigOpt = Annotated[
    Path | None, typer.Option("--gate-config", help="thresholds YAML (default configs/gates.yaml)")
]
GateHistoryOpt = Annotated[
    Path | None,
    typer.Option(
        "--history",
        help="folder of good nights: noise bands, and the median a slow drift is judged against",
    ),
]
WriteToOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="write to a file instead of the terminal")
]
DetailOpt = Annotated[
    bool | None,
    typer.Option(
        "--detail/--leaderboard",
        help="every metric side by side, or the leaderboard (default: side by side for up to three runs of one suite)",
    ),
]
ReportOutputOpt = Annotated[Path, typer.Option("--output", "-o", help="HTML file to write")]
HistoryDirArg = Annotated[Path, typer.Argument(help="folder of results files from repeated (nightly) runs")]
MetricOpt = Annotated[
    str | None, typer.Option("--metric", help="e.g. gsm8k.accuracy or performance.ttft_ms.p50")
]
PlotOpt = Annotated[Path | None, typer.Option("--plot", help="also write the trend as an SVG")]
HistoryHtmlOpt = Annotated[
    Path | None,
    typer.Option("--html", help="also write an HTML page: each gated figure's trend with its noise band"),
]
YamlFilesArg = Annotated[list[Path], typer.Argument(help="suite, model or study YAML files")]
ScoreSuiteArg = Annotated[Path | None, typer.Argument(help="suite YAML whose tasks the samples belong to")]
SamplesOpt = Annotated[
    Path,
    typer.Option(
        "--samples",
        "-s",
        help="JSONL completions: {task_id, completion} or {task, id, output}, with any tool_calls",
    ),
]
ScorerOpt = Annotated[
    str | None, typer.Option("--scorer", help="score lines carrying their own output and reference")
]
ScoreOutputOpt = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="results file to write (default: a new one in results/)"),
]
ScoreFreshOpt = Annotated[bool, typer.Option("--fresh", help="replace the results file at --output")]
PortOpt = Annotated[
    int, typer.Option("--port", help="port on 127.0.0.1 to serve on; 0 picks a free one", min=0, max=65535)
]
ExportToOpt = Annotated[
    str,
    typer.Option(
        "--to", help="where to export: mlflow, wandb (offline runs), hf-dataset", show_default=False
    ),
]
TrackingUriOpt = Annotated[
    str | None, typer.Option("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")
]
ExportDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--output", "-o", help="folder: the dataset (hf-dataset), or where W&B's offline runs go (wandb)"
    ),
]
ExperimentOpt = Annotated[
    str | None, typer.Option("--experiment", help="MLflow experiment or W&B project (default: llmbench)")
]


def int_list(text: str | None) -> list[int]:
    """Comma-separated integers from 1 to 1,000,000 (as --batch-sizes takes them); empty for no text."""
    if not text:
        return []
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserInputError(f"expected comma-separated integers, got '{text}'") from None
    if not values or any(not 1 <= v <= 1_000_000 for v in values):
        raise UserInputError(f"expected integers from 1 to 1000000, got '{text}'")
    return values
