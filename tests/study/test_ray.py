"""A study on a real local Ray cluster of two nodes (one host, CPU only, fake GPU resources).

Cost: two Ray nodes with 1 CPU and 80 MB of object store each; tiny-qwen2 and the reference backend on
maths (4 samples) and JSON (1 sample); about 2-4 minutes for the module on a 2-core machine.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from llmbench.study.runner import StudyOptions, StudyOutcome, run_study  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.ray]
NODE = {"num_cpus": 1, "num_gpus": 1, "object_store_memory": 80 * 1024**2}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # Workers at normal priority (Ray's default is nice 15): on a host busy with other work a niced
    # worker gets a sliver of a CPU and the study crawls.
    c = Cluster(initialize_head=True, head_node_args={**NODE, "_system_config": {"worker_niceness": 0}})
    c.add_node(**NODE)
    c.wait_for_nodes()
    yield c
    if ray.is_initialized():
        ray.shutdown()
    c.shutdown()


def study(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(body)
    return path


def comparable(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    samples = [
        (s["task"], s["id"], s["sample_index"], s["output"], s["score"], s["status"], s["prompt_hash"])
        for s in data["samples"]
    ]
    metrics = {t["name"]: {k: v["value"] for k, v in t["metrics"].items()} for t in data["tasks"]}
    return {
        "samples": samples,
        "metrics": metrics,
        "fingerprint": data["fingerprint"],
        "settings": data["settings"],
    }


TWO_BY_TWO = """name: ray2x2
models:
  - tiny-qwen2
  - {base: tiny-qwen2, backend: reference}
suites:
  - {suite: math, limit: 4, tasks: [gsm8k]}
  - {suite: json, limit: 1}
"""


def test_two_models_by_two_suites_on_two_nodes_then_a_sharded_cell_equals_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    whole = run_study(
        study(tmp_path, TWO_BY_TWO), StudyOptions(ray=cluster.address, results_dir=tmp_path / "whole")
    )
    assert not whole.failed
    assert {c.state for c in whole.manifest.cells} == {"done"}
    assert whole.leaderboard is not None and len(whole.leaderboard.rows) == 2
    assert all(c.node for c in whole.manifest.cells)

    sharded_dir = tmp_path / "sharded"
    (tmp_path / "s").mkdir()
    body = "name: ray-sharded\nshards: 2\nmodels: [tiny-qwen2]\nsuites:\n  - {suite: math, limit: 4, tasks: [gsm8k]}\n"
    sharded = run_study(
        study(tmp_path / "s", body), StudyOptions(ray=cluster.address, results_dir=sharded_dir)
    )
    assert not sharded.failed
    cell = "math-tiny-qwen2-seed0.json"
    shard_journals = sorted((sharded_dir / "shards").glob("*.journal.jsonl"))
    assert len(shard_journals) == 2 and all(j.read_text().count('"request_id"') >= 1 for j in shard_journals)
    assert comparable(sharded_dir / cell) == comparable(tmp_path / "whole" / cell)


def test_a_worker_killed_mid_cell_is_retried_and_resumes(cluster: Cluster, tmp_path: Path) -> None:
    # 20 samples in batches of 8: the first 16 are journaled together (one scoring chunk) while the last
    # batch is still to run, so the kill lands mid-cell (8 samples were journaled at once as the cell ended,
    # and a kill could come after it had finished)
    n = 20
    body = (
        "name: ray-kill\nmodels: [{base: tiny-qwen2, name: tiny-b8, set: {batch_size: 8}}]\n"
        f"suites:\n  - {{suite: math, limit: {n}, tasks: [gsm8k]}}\n"
    )
    out = tmp_path / "out"
    journal = out / "math-tiny-b8-seed0.journal.jsonl"
    outcome: list[StudyOutcome] = []
    runner = threading.Thread(
        target=lambda: outcome.append(
            run_study(study(tmp_path, body), StudyOptions(ray=cluster.address, results_dir=out))
        )
    )
    runner.start()
    killed = None
    deadline = time.time() + 600
    while time.time() < deadline and runner.is_alive() and killed is None:
        manifest = out / "study.json"
        if journal.exists() and 1 <= journal.read_text().count('"request_id"') < n and manifest.exists():
            worker = json.loads(manifest.read_text())["cells"][0]["worker"]
            if worker:
                killed = int(worker.split(":")[1])
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    runner.join(timeout=900)
    assert killed is not None, "the cell finished before its worker could be killed"
    assert outcome and not outcome[0].failed
    entry = outcome[0].manifest.cells[0]
    assert (
        entry.state == "done"
        and entry.attempts >= 2
        and entry.worker != f"{entry.worker.split(':')[0]}:{killed}"
    )
    ids = [
        json.loads(line)["request_id"] for line in journal.read_text().splitlines() if '"request_id"' in line
    ]
    assert len(ids) == len(set(ids)) == n  # every sample exactly once
    assert len(json.loads((out / "math-tiny-b8-seed0.json").read_text())["samples"]) == n
