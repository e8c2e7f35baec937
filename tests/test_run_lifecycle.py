"""What a run starts it stops, and `llmbench score` writes the same kind of results file as `llmbench run`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import psutil
import pytest

from llmbench import api
from llmbench.backends.base import BackendInfo, backends
from llmbench.errors import UserInputError
from llmbench.results.io import read_results
from llmbench.run.assemble import vram_note
from llmbench.run.journal import Journal, read_journal
from llmbench.types import Completion, GenerationRequest
from tests.model_free_backend import ModelFreeBackend


def _sandbox_servers() -> list[psutil.Process]:
    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if any("sandbox_server" in part for part in p.cmdline()):
                found.append(p)
        except psutil.NoSuchProcess:
            pass
    return found


def test_a_code_scored_run_leaves_no_sandbox_process_behind(tmp_path: Path) -> None:
    reference = api.model("tiny-qwen2", backend="reference")
    for i in range(2):
        opts = api.RunOptions(limit=2, tasks=["mbpp"], output=tmp_path / f"run{i}.json")
        result, _ = api.run("suites/coding.yaml", reference, opts)
        assert result.tasks[0].metrics["pass@1"].value == 1.0  # the sandbox did run the programs
        assert _sandbox_servers() == []


def test_score_writes_the_run_level_fingerprint_of_a_run_of_the_same_samples(tmp_path: Path) -> None:
    reference = api.model("tiny-qwen2", backend="reference")
    ran, _ = api.run("suites/math.yaml", reference, api.RunOptions(limit=2, output=tmp_path / "run.json"))
    samples = tmp_path / "samples.jsonl"
    lines = [{"task": r.task, "id": r.id, "output": r.output} for r in ran.samples]
    samples.write_text("".join(json.dumps(line) + "\n" for line in lines))
    scored, path = api.score("suites/math.yaml", samples, output=tmp_path / "scored.json")
    assert path.exists() and set(scored.fingerprint) == set(ran.fingerprint)
    assert [t.name for t in scored.tasks] == [t.name for t in ran.tasks]
    assert all(r.status == "correct" for r in scored.samples if r.error is None)


def test_score_never_replaces_an_earlier_results_file_unless_told(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\ntasks:\n  - name: a\n    dataset: {local: d.jsonl, reference_field: answer}\n"
        "    scorer: {name: exact}\n"
    )
    (tmp_path / "d.jsonl").write_text('{"id": "1", "prompt": "yes?", "answer": "yes"}\n')
    first_model, second_model = tmp_path / "one", tmp_path / "two"
    for folder, output in ((first_model, "yes"), (second_model, "no")):
        folder.mkdir()
        (folder / "samples.jsonl").write_text(json.dumps({"task": "a", "id": "1", "output": output}) + "\n")
    results = tmp_path / "results"
    first, first_path = api.score(suite, first_model / "samples.jsonl", results_dir=results)
    second, second_path = api.score(suite, second_model / "samples.jsonl", results_dir=results)
    assert first_path != second_path and sorted(results.iterdir()) == sorted([first_path, second_path])
    assert (
        read_results(first_path).suite_score.value == 1.0
        and read_results(second_path).suite_score.value == 0.0
    )
    assert (first.run_id, second.run_id) == (first_path.stem, second_path.stem)
    with pytest.raises(UserInputError, match="a results file exists here") as refused:
        api.score(suite, second_model / "samples.jsonl", output=first_path)
    assert refused.value.exit_code == 2 and "--fresh" in (refused.value.hint or "")
    assert read_results(first_path).suite_score.value == 1.0
    api.score(suite, second_model / "samples.jsonl", output=first_path, fresh=True)
    assert read_results(first_path).suite_score.value == 0.0


def test_how_to_read_the_vram_peak_comes_from_the_backends_typed_facts() -> None:
    vllm = BackendInfo(backend="vllm", model="m", gpus=[0], preallocated_vram_share=0.9, kv_cache_tokens=4096)
    assert "reserves 90%" in (vram_note(vllm) or "") and "4096 tokens" in (vram_note(vllm) or "")
    remote = BackendInfo(backend="any-api", model="m", gpus=None, server_url="http://gpu-box:8000/v1")
    assert "http://gpu-box:8000/v1 may run elsewhere" in (vram_note(remote) or "")
    assert vram_note(BackendInfo(backend="transformers", model="m", gpus=[0])) is None


def test_no_code_outside_the_backends_reads_a_backends_private_details() -> None:
    root = Path(__file__).resolve().parent.parent / "llmbench"
    outside = [p for p in root.rglob("*.py") if "backends" not in p.relative_to(root).parts]
    reads_extra = [str(p) for p in outside if re.search(r"\.extra(\.get\(|\[)", p.read_text())]
    names_a_backend = [str(p) for p in (root / "run").rglob("*.py") if '"openai"' in p.read_text()]
    assert reads_extra == [] and names_a_backend == []


def test_unnamed_runs_in_quick_succession_each_keep_their_results_and_journal(tmp_path: Path) -> None:
    reference = api.model("tiny-qwen2", backend="reference")
    opts = api.RunOptions(limit=1, tasks=["gsm8k"], results_dir=tmp_path)
    paths = [api.run("suites/math.yaml", reference, opts)[1] for _ in range(3)]  # well within a second
    assert len(set(paths)) == 3
    for path in paths:
        assert read_results(path).run_id == path.stem == read_journal(Journal.path_for(path)).header["run_id"]


class _SteadyServer(ModelFreeBackend):
    """Answers every request in the same virtual time: every saturation probe passes."""

    name: ClassVar[str] = "steady-test"

    def __init__(self, model: object, model_path: str) -> None:
        pass

    def answer(
        self, requests: list[GenerationRequest], concurrency: int | None, offsets: list[float] | None
    ) -> Iterator[Completion]:
        for request in requests:
            n = request.params.max_new_tokens
            yield Completion(
                request_id=request.request_id, text="x" * n, output_tokens=n, ttft_ms=5.0, latency_ms=5.0 + n
            )


SEARCH_SUITE = """
name: search
tasks:
  - name: steady
    perf:
      input_tokens: [8]
      output_tokens: [4]
      requests_per_point: 2
      warmup_requests: 0
      saturation: {slo_ttft_p99_ms: 1000, min_rate: 1, max_rate: 4, requests_per_point: 4,
                   closed_loop_concurrency: null}
"""


def test_a_resume_that_searches_saturation_again_is_new_work_not_a_rebuild(tmp_path: Path) -> None:
    if _SteadyServer.name not in backends:
        backends.add(_SteadyServer.name, _SteadyServer)
    (tmp_path / "search.yaml").write_text(SEARCH_SUITE)
    model = api.model("tiny-qwen2", backend=_SteadyServer.name)
    opts = api.RunOptions(output=tmp_path / "run.json")
    first, path = api.run(tmp_path / "search.yaml", model, opts)
    assert first.performance.saturation and not first.summary.rebuilt_from_journal
    path.unlink()  # killed after the search, before the results file: every sweep point is journaled
    resumed, _ = api.run(tmp_path / "search.yaml", model, opts)
    assert resumed.performance.saturation[0].probes  # the search is not journaled: it ran again
    assert not resumed.summary.rebuilt_from_journal  # so the file holds new figures, not a rebuild


class _RecordingServer(_SteadyServer):
    """Keeps every prompt it was sent."""

    name: ClassVar[str] = "recording-test"
    sent: ClassVar[list[list[int]]] = []

    def answer(
        self, requests: list[GenerationRequest], concurrency: int | None, offsets: list[float] | None
    ) -> Iterator[Completion]:
        self.sent.extend(list(r.prompt_token_ids or ()) for r in requests)
        return super().answer(requests, concurrency, offsets)


TWO_SWEEPS = """
name: two-sweeps
tasks:
  - name: context
    perf: {input_tokens: [16], output_tokens: [2], concurrency: [1], requests_per_point: 3, warmup_requests: 1}
  - name: load
    perf: {input_tokens: [16], output_tokens: [2], concurrency: [1], requests_per_point: 3, warmup_requests: 1}
"""


def test_two_perf_tasks_of_a_run_never_send_the_same_prompt(tmp_path: Path) -> None:
    """A prompt the engine saw in an earlier task would be answered from its prefix cache: a TTFT too good."""
    if _RecordingServer.name not in backends:
        backends.add(_RecordingServer.name, _RecordingServer)
    (tmp_path / "two.yaml").write_text(TWO_SWEEPS)
    _RecordingServer.sent.clear()
    model = api.model("tiny-qwen2", backend=_RecordingServer.name)
    api.run(tmp_path / "two.yaml", model, api.RunOptions(output=tmp_path / "run.json"))
    sent = _RecordingServer.sent
    assert len(sent) == 2 * (3 + 1) and all(len(p) == 16 for p in sent)
    assert len({tuple(p[:2]) for p in sent}) == len(sent)  # no two share even their first tokens
