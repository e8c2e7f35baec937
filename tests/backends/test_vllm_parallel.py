"""Tensor, pipeline and data parallel on vLLM: the sizes reach the engine and the server as given, and the
backend declares every GPU its workers take (no GPU needed: the options and the declaration are pure)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from llmbench.backends.vllm_engine import declared_gpus, engine_gpus
from llmbench.backends.vllm_options import server_flags, vllm_options
from llmbench.config.models import ModelConfig

MODEL_PATH = "/models/qwen2.5-7b"  # never opened


def parallel(tp: int = 1, pp: int = 1, dp: int = 1, **more: object) -> ModelConfig:
    return ModelConfig(
        name="m",
        model="m",
        backend="vllm",
        tensor_parallel_size=tp,
        pipeline_parallel_size=pp,
        data_parallel_size=dp,
        **more,  # type: ignore[arg-type]
    )


def options(cfg: ModelConfig, *, in_process: bool = True) -> dict[str, object]:
    return vllm_options(
        cfg, MODEL_PATH, on_cpu=False, has_tokenizer=True, architecture_dir=None, in_process=in_process
    )


@pytest.mark.parametrize(
    ("tp", "pp", "dp", "visible", "gpus"),
    [
        (1, 1, 1, 8, [0]),
        (2, 1, 1, 8, [0, 1]),
        (2, 2, 1, 8, [0, 1, 2, 3]),  # pipeline stages are GPUs too (the old declaration had [0, 1])
        (2, 1, 2, 8, [0, 1, 2, 3]),  # and so is each data-parallel engine
        (2, 2, 2, 8, list(range(8))),
        (4, 2, 1, 4, [0, 1, 2, 3]),  # ranks past the visible devices run on other nodes
        (1, 1, 1, 0, []),
    ],
)
def test_the_declared_gpus_are_every_rank_of_every_engine_within_the_visible_ones(
    tp: int, pp: int, dp: int, visible: int, gpus: list[int]
) -> None:
    assert engine_gpus(tp, pp, dp, visible) == gpus


def test_the_declaration_reads_the_sizes_vllm_resolved_and_its_local_engines() -> None:
    def vc(**sizes: int | None) -> SimpleNamespace:
        return SimpleNamespace(parallel_config=SimpleNamespace(**sizes))

    resolved = vc(
        tensor_parallel_size=2, pipeline_parallel_size=2, data_parallel_size=2, data_parallel_size_local=2
    )
    assert declared_gpus(resolved, 8) == list(range(8))
    # Two engines in all, one on this node (the other on another node): only this node's ranks are ours.
    split = vc(
        tensor_parallel_size=2, pipeline_parallel_size=1, data_parallel_size=2, data_parallel_size_local=1
    )
    assert declared_gpus(split, 8) == [0, 1]
    unset = vc(
        tensor_parallel_size=1, pipeline_parallel_size=1, data_parallel_size=3, data_parallel_size_local=None
    )
    assert declared_gpus(unset, 8) == [0, 1, 2]


def test_parallel_sizes_reach_the_engine_and_the_server_as_configured() -> None:
    cfg = parallel(tp=4, pp=2, dp=2, distributed_executor_backend="ray")
    built = options(cfg)
    assert (built["tensor_parallel_size"], built["pipeline_parallel_size"], built["data_parallel_size"]) == (
        4,
        2,
        2,
    )
    assert built["distributed_executor_backend"] == "ray"
    flags = server_flags(options(cfg, in_process=False))
    for flag, value in [
        ("--tensor-parallel-size", "4"),
        ("--pipeline-parallel-size", "2"),
        ("--data-parallel-size", "2"),
        ("--distributed-executor-backend", "ray"),
    ]:
        assert flags[flags.index(flag) + 1] == value


def test_engine_args_of_the_config_have_the_last_word_on_parallel_sizes() -> None:
    cfg = parallel(tp=2, engine_args={"vllm": {"tensor_parallel_size": 8, "data_parallel_size_local": 1}})
    built = options(cfg)
    assert built["tensor_parallel_size"] == 8 and built["data_parallel_size_local"] == 1


@pytest.mark.parametrize(
    ("ours", "vllms"), [("bnb-4bit", "bitsandbytes"), ("bnb-8bit", "bitsandbytes"), ("awq", "awq")]
)
def test_quantization_names_are_vllms(ours: str, vllms: str) -> None:
    assert options(parallel(quantization=ours))["quantization"] == vllms


def test_vllms_engine_arguments_carry_the_parallel_sizes() -> None:
    pytest.importorskip("vllm")
    from llmbench.backends.vllm_engine import engine_args
    from llmbench.testing.tinymodel import ensure_tiny_model

    cfg = parallel(tp=2, pp=3, dp=2, quantization="bnb-4bit")
    args = engine_args(cfg, str(ensure_tiny_model()), False, True, None)  # built, never started
    assert (args.tensor_parallel_size, args.pipeline_parallel_size, args.data_parallel_size) == (2, 3, 2)
    assert args.quantization == "bitsandbytes"
