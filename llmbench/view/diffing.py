"""Two runs of the same samples side by side: why they disagree, then where, sample by sample.

The top of the page is the paired test (the suite's, then each task's McNemar counts) and what the two
runs were made with that differs (fingerprints, prompt tokens). Below come the samples whose verdict
flipped, then those whose output changed, each output beside the other with the changed words marked.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from llmbench.analysis.parity import parity
from llmbench.analysis.significance import paired_suite_delta
from llmbench.results.schema import RunResult
from llmbench.view.queries import one_page

DIFF_TOKENS = 4000  # words (and spaces) of each output compared; a longer tail is shown unmarked
_WORDS = re.compile(r"\s+|\w+|[^\w\s]")

Key = tuple[str, str, int]


def fingerprint_differences(a: RunResult, b: RunResult) -> list[dict[str, Any]]:
    """Each fingerprint entry (run-wide, then per task) whose value differs between the runs."""
    out = [
        {"scope": "run", "key": k, "a": a.fingerprint.get(k), "b": b.fingerprint.get(k)}
        for k in sorted(set(a.fingerprint) | set(b.fingerprint))
        if a.fingerprint.get(k) != b.fingerprint.get(k)
    ]
    for ta in a.tasks:
        tb = b.task(ta.name)
        if tb is None:
            continue
        out += [
            {"scope": ta.name, "key": k, "a": ta.fingerprint.get(k), "b": tb.fingerprint.get(k)}
            for k in sorted(set(ta.fingerprint) | set(tb.fingerprint))
            if ta.fingerprint.get(k) != tb.fingerprint.get(k)
        ]
    return out


def settings_differences(a: RunResult, b: RunResult) -> list[dict[str, Any]]:
    """Settings and backend facts that differ (seed, limit, dtype, chat template)."""
    out = []
    for scope, x, y in (
        ("settings", a.settings.model_dump(), b.settings.model_dump()),
        (
            "backend",
            a.backend.model_dump(exclude={"extra", "load_time_s", "load_state"}),
            b.backend.model_dump(exclude={"extra", "load_time_s", "load_state"}),
        ),
    ):
        out += [
            {"scope": scope, "key": k, "a": x.get(k), "b": y.get(k)}
            for k in sorted(set(x) | set(y))
            if x.get(k) != y.get(k) and not (scope == "backend" and k in a.fingerprint)
        ]
    return out


def _pairs(a: RunResult, b: RunResult) -> list[tuple[int, int, str]]:
    """(index in a, index in b, kind) of the samples both runs hold whose verdict or output differ."""
    where_b = {(r.task, r.id, r.sample_index): j for j, r in enumerate(b.samples)}
    found: list[tuple[Key, int, int, str]] = []
    for i, x in enumerate(a.samples):
        key = (x.task, x.id, x.sample_index)
        j = where_b.get(key)
        if j is None:
            continue
        y = b.samples[j]
        if (x.status == "correct") != (y.status == "correct"):
            found.append((key, i, j, "flipped"))
        elif x.output != y.output:
            found.append((key, i, j, "changed"))
    order = {"flipped": 0, "changed": 1}
    found.sort(key=lambda f: (order[f[3]], f[0]))
    return [(i, j, kind) for _, i, j, kind in found]


def summary(a: RunResult, b: RunResult) -> dict[str, Any]:
    """The top of the diff page: paired tests, parity counts and what the runs were made with."""
    report = parity(a, b)
    suite = paired_suite_delta(a, b)
    pairs = _pairs(a, b)
    return {
        "n_common": report.n_common,
        "prompt_hash_matches": report.prompt_hash_matches,
        "prompt_hash_compared": report.prompt_hash_compared,
        "output_matches": report.output_matches,
        "flipped": sum(1 for *_, k in pairs if k == "flipped"),
        "changed": sum(1 for *_, k in pairs if k == "changed"),
        "suite_test": None
        if suite is None
        else {
            "delta": suite.value,
            "ci_low": suite.ci_low,
            "ci_high": suite.ci_high,
            "p_value": suite.p_value,
            "test": suite.test,
            "significant": suite.significant,
            "n": suite.n_paired,
        },
        "tasks": [
            {
                "task": t.task,
                "n": t.n,
                "a_score": t.a_score,
                "b_score": t.b_score,
                "a_only_correct": t.a_only_correct,
                "b_only_correct": t.b_only_correct,
                "p_value": t.p_value,
            }
            for t in report.tasks
        ],
        "fingerprint": fingerprint_differences(a, b),
        "settings": settings_differences(a, b),
    }


def rows(a: RunResult, b: RunResult, kind: str | None, page: int, size: int) -> dict[str, Any]:
    """One page of differing samples (flipped first), each with both outputs marked where they differ."""
    pairs = [p for p in _pairs(a, b) if kind in (None, "", p[2])]
    return one_page(pairs, page, size, lambda pair: _row(a, b, *pair))


def _row(a: RunResult, b: RunResult, i: int, j: int, kind: str) -> dict[str, Any]:
    x, y = a.samples[i], b.samples[j]
    left, right = marked(x.output or x.error or "", y.output or y.error or "")
    return {
        "kind": kind,
        "task": x.task,
        "id": x.id,
        "sample_index": x.sample_index,
        "a_key": i,
        "b_key": j,
        "a_status": x.status,
        "b_status": y.status,
        "same_prompt": None if not (x.prompt_hash and y.prompt_hash) else x.prompt_hash == y.prompt_hash,
        "a": left,
        "b": right,
    }


def marked(a: str, b: str) -> tuple[list[list[Any]], list[list[Any]]]:
    """Both texts as segments [text, changed]: words only in `a` marked on the left, only in `b` on the right."""
    ta, tb = _WORDS.findall(a), _WORDS.findall(b)
    head_a, head_b = ta[:DIFF_TOKENS], tb[:DIFF_TOKENS]
    left: list[list[Any]] = []
    right: list[list[Any]] = []
    matcher = difflib.SequenceMatcher(None, head_a, head_b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        changed = op != "equal"
        _append(left, "".join(head_a[i1:i2]), changed)
        _append(right, "".join(head_b[j1:j2]), changed)
    _append(left, "".join(ta[DIFF_TOKENS:]), False)
    _append(right, "".join(tb[DIFF_TOKENS:]), False)
    return left, right


def _append(segments: list[list[Any]], text: str, changed: bool) -> None:
    if not text:
        return
    if segments and segments[-1][1] == changed:
        segments[-1][0] += text
    else:
        segments.append([text, changed])
