"""Which fingerprint keys differ between runs: what makes two runs' figures not strictly comparable."""

from __future__ import annotations

from llmbench.results.schema import RunResult

# What a model brings with it: two different models differ here by nature, so these keys are only
# compared between runs of the same model (a chat-template override, another backend or dtype).
MODEL_KEYS = frozenset({"chat_template", "prompt_tokens", "backend", "dtype", "batch_size"})


def differing_keys(pairs: list[tuple[RunResult, dict[str, str]]]) -> list[str]:
    """Fingerprint keys whose values differ among the runs that record them (model keys: within one model)."""
    if len(pairs) < 2:
        return []
    keys = sorted({k for _, p in pairs for k in p})
    differ = []
    for key in keys:
        groups: dict[object, set[str]] = {}
        for run, prints in pairs:
            if key in prints:
                group = _model_identity(run) if key in MODEL_KEYS else None
                groups.setdefault(group, set()).add(prints[key])
        if any(len(values) > 1 for values in groups.values()):
            differ.append(key)
    return differ


def _model_identity(run: RunResult) -> tuple[object, object]:
    return run.model.get("model"), run.model.get("revision")
