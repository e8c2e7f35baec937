"""What the Transformers backend hands `from_pretrained`: bitsandbytes 4/8-bit configs, the device map, the
config's own arguments. Built with transformers' real `BitsAndBytesConfig`; nothing is loaded (no GPU needed)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import transformers

from llmbench.backends.transformers import TransformersBackend
from llmbench.config.models import ModelConfig


def load_kwargs(cuda: bool = True, **config: object) -> dict[str, Any]:
    cfg = ModelConfig(name="m", model="m", **config)  # type: ignore[arg-type]
    return TransformersBackend(cfg, "/models/m")._pretrained_kwargs(transformers, torch, torch.bfloat16, cuda)


@pytest.mark.parametrize("name", ["bnb-4bit", "bitsandbytes", "4bit"])
def test_four_bit_quantization_is_nf4_computing_in_bf16(name: str) -> None:
    q = load_kwargs(quantization=name)["quantization_config"]
    assert isinstance(q, transformers.BitsAndBytesConfig)
    assert q.load_in_4bit and not q.load_in_8bit
    assert q.bnb_4bit_quant_type == "nf4" and q.bnb_4bit_compute_dtype == torch.bfloat16


@pytest.mark.parametrize("name", ["bnb-8bit", "8bit"])
def test_eight_bit_quantization_is_llm_int8(name: str) -> None:
    q = load_kwargs(quantization=name)["quantization_config"]
    assert isinstance(q, transformers.BitsAndBytesConfig)
    assert q.load_in_8bit and not q.load_in_4bit


def test_prequantized_checkpoints_keep_their_own_config() -> None:
    assert load_kwargs(quantization="awq")["quantization_config"] is None
    assert "quantization_config" not in load_kwargs()


def test_weights_are_spread_over_the_gpus_only_where_there_are_gpus() -> None:
    assert load_kwargs(cuda=True)["device_map"] == "auto"
    assert "device_map" not in load_kwargs(cuda=False)
    kwargs = load_kwargs(revision="abc123", trust_remote_code=True)
    assert (
        kwargs["dtype"] == torch.bfloat16 and kwargs["revision"] == "abc123" and kwargs["trust_remote_code"]
    )


def test_the_configs_own_arguments_have_the_last_word() -> None:
    memory = {0: "20GiB", 1: "20GiB"}
    kwargs = load_kwargs(engine_args={"transformers": {"device_map": "balanced", "max_memory": memory}})
    assert kwargs["device_map"] == "balanced" and kwargs["max_memory"] == memory
