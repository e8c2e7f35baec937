"""Dummy weights placed where real ones go: the device map `"auto"` computes, then random weights drawn there.

The map is a pure function of the model's sizes and each device's memory, so it is checked on the CPU for
qwen2.5-7b-dummy on a host of two GPUs; the CPU placement is run for real and generates as the old CPU build did.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers

from llmbench.backends.transformers import TransformersBackend
from llmbench.backends.transformers_placement import auto_device_map, dummy_model, empty_model
from llmbench.config.models import ModelConfig
from llmbench.testing.tinymodel import ensure_tiny_model

pytest.importorskip("accelerate")


QWEN_7B = Path(__file__).parents[2] / "configs" / "architectures" / "qwen2.5-7b.json"
GIB = 1024**3


@pytest.fixture(scope="module")
def arch() -> Any:
    return transformers.AutoConfig.from_pretrained(ensure_tiny_model())


@pytest.fixture(scope="module")
def qwen_7b() -> Any:
    """qwen2.5-7b-dummy's model on the meta device: 15.2 GB of bf16 weights, no memory taken."""
    arch = transformers.AutoConfig.from_pretrained(QWEN_7B)
    return empty_model(transformers, torch, arch, torch.bfloat16, trust_remote_code=False)


TWO_H100S: dict[int | str, int | str] = {0: 80 * GIB, 1: 80 * GIB, "cpu": 200 * GIB}


def test_the_dummy_device_map_spreads_the_layers_over_every_gpu(qwen_7b: Any) -> None:
    placed = auto_device_map(qwen_7b, TWO_H100S)
    assert set(placed.values()) == {0, 1}  # not everything on cuda:0 (the old dummy load), nothing on the CPU
    layers = [placed[f"model.layers.{i}"] for i in range(qwen_7b.config.num_hidden_layers)]  # never split
    assert layers == sorted(layers) and 0 < layers.count(0) < len(layers)  # in order, shared out
    assert placed["model.embed_tokens"] == 0 and placed["lm_head"] == 1


def test_the_dummy_device_map_is_the_one_from_pretrained_computes_for_real_weights(qwen_7b: Any) -> None:
    from transformers.integrations.accelerate import _get_device_map  # what device_map="auto" runs

    for memory in (TWO_H100S, {0: 10 * GIB, 1: 10 * GIB, "cpu": 200 * GIB}):
        expected = _get_device_map(qwen_7b, "auto", dict(memory), None)
        assert auto_device_map(qwen_7b, memory) == dict(expected)


def test_dummy_weights_on_the_cpu_are_drawn_and_rotary_tables_recomputed(arch: Any) -> None:
    built = dummy_model(transformers, torch, arch, torch.float32, cuda=False, load_kwargs={})
    reference = transformers.AutoModelForCausalLM.from_config(arch, dtype=torch.float32)
    assert not any(t.is_meta for t in [*built.parameters(), *built.buffers()])
    # inv_freq is a non-persistent buffer: `to_empty` leaves garbage, the model's init computes it again.
    for name, buffer in reference.named_buffers():
        assert torch.equal(built.get_buffer(name), buffer), name
    assert built.lm_head.weight is built.model.embed_tokens.weight  # tied again
    weights = built.model.layers[0].mlp.up_proj.weight
    assert (
        torch.isfinite(weights).all() and 0.01 < float(weights.detach().std()) < 0.03
    )  # initializer_range 0.02


def test_a_dummy_model_generates_the_shapes_it_did_before_placement(arch: Any, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(arch.to_dict()))
    cfg = ModelConfig(
        name="tiny-dummy", model=str(tmp_path), load_format="dummy", dtype="float32", device="cpu"
    )
    backend = TransformersBackend(cfg, str(tmp_path))
    info = backend.load()
    assert info.gpus == [] and info.device == "cpu"
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    out = backend._model.generate(input_ids=ids, max_new_tokens=3, min_new_tokens=3, do_sample=False)
    reference = transformers.AutoModelForCausalLM.from_config(arch, dtype=torch.float32).eval()
    expected = reference.generate(input_ids=ids, max_new_tokens=3, min_new_tokens=3, do_sample=False)
    assert out.shape == expected.shape == (2, 7)
    backend.close()
