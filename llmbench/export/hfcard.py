"""The dataset card of an exported samples folder: YAML front matter the Hub and `datasets` read, and a table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from llmbench.report.mdtable import table_cell

# The columns of every split, in order, with their kind (see HfDatasetExporter._schema). Values that vary
# in shape from task to task (reference, details, metadata, metrics) are JSON text, so all splits share them.
FIELDS: tuple[tuple[str, str], ...] = (
    ("run_id", "string"),
    ("model", "string"),
    ("backend", "string"),
    ("suite", "string"),
    ("task", "string"),
    ("id", "string"),
    ("sample_index", "int64"),
    ("prompt", "string"),
    ("messages", "messages"),
    ("output", "string"),
    ("reference", "string"),
    ("score", "float64"),
    ("status", "string"),
    ("metrics", "string"),
    ("details", "string"),
    ("metadata", "string"),
    ("tokens_in", "int64"),
    ("tokens_out", "int64"),
    ("reasoning_tokens", "int64"),
    ("finish_reason", "string"),
    ("ttft_ms", "float64"),
    ("latency_ms", "float64"),
    ("tpot_ms", "float64"),
    ("prompt_hash", "string"),
    ("output_hash", "string"),
    ("batch_size", "int64"),
    ("error", "string"),
    ("warnings", "strings"),
)


def _feature(name: str, kind: str) -> dict[str, Any]:
    if kind == "strings":
        return {"name": name, "list": "string"}
    if kind == "messages":
        return {
            "name": name,
            "list": [{"name": "role", "dtype": "string"}, {"name": "content", "dtype": "string"}],
        }
    return {"name": name, "dtype": kind}


def front_matter(splits: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """`configs` (a config per suite, its splits' files; the first config is the default) and `dataset_info`."""
    configs: dict[str, list[dict[str, Any]]] = {}
    for split in sorted(splits, key=lambda s: (s["config"], s["split"])):
        configs.setdefault(split["config"], []).append(split)
    features = [_feature(name, kind) for name, kind in FIELDS]
    return {
        "pretty_name": "llmbench samples",
        "tags": ["llmbench", "evaluation"],
        "configs": [
            {
                "config_name": name,
                **({"default": True} if i == 0 else {}),
                "data_files": [{"split": s["split"], "path": s["path"]} for s in group],
            }
            for i, (name, group) in enumerate(configs.items())
        ],
        "dataset_info": [
            {
                "config_name": name,
                "features": features,
                "splits": [
                    {"name": s["split"], "num_bytes": s.get("num_bytes", 0), "num_examples": s["rows"]}
                    for s in group
                ],
            }
            for name, group in configs.items()
        ],
    }


class _Dumper(yaml.SafeDumper):
    """Writes every config's features out in full: no YAML anchors, which some card readers refuse."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render_card(splits: Sequence[dict[str, Any]]) -> str:
    """The README.md: front matter, then what each split is (model, backend, suite, date, score)."""
    head = yaml.dump(front_matter(splits), Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    lines = [
        f"---\n{head}---",
        "",
        "# llmbench samples",
        "",
        "Every sample of the runs below, one row each: prompt, output, reference, verdict, score, the scorer's",
        "details and the sample's timings. A config per suite, a split per run. Exported by `llmbench export`.",
        "",
        "```python",
        "from datasets import load_dataset",
        f'samples = load_dataset("path/or/hub-id", "{splits[0]["config"] if splits else "suite"}")',
        "```",
        "",
        "| config | split | model | backend | created | samples | suite score | run id |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in sorted(splits, key=lambda s: (s["config"], s["split"])):
        score = "" if s.get("suite_score") is None else f"{s['suite_score']:.4g}"
        cells = [
            s["config"],
            s["split"],
            s["model"],
            s["backend"],
            s["created_at"],
            str(s["rows"]),
            score,
            s["run_id"],
        ]
        lines.append("| " + " | ".join(table_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"
