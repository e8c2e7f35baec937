"""tiny-qwen2: a 2-layer, random-weight Qwen2 with a real BPE tokenizer and chat template, built locally.

It is what the demo and the tests run, on any machine, with no network: small enough to load in a
second, shaped so that vLLM's CPU attention accepts it (head_dim 64), with a ChatML template like
Qwen2.5's so chat-template handling is exercised for real.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmbench.config.models import ModelConfig

TINY_QWEN2 = "tiny-qwen2"
_VERSION = "v1"  # bump when the recipe changes: the cache key includes it

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if loop.first and message['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_CORPUS = """
The quick brown fox jumps over the lazy dog. A model answers questions about numbers, code and text.
Question: Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.
How many clips did Natalia sell altogether? The answer is 72. #### 72
def add(a: int, b: int) -> int:
    return a + b
for i in range(10):
    print(i * i)
class Solution:
    def twoSum(self, nums: list[int], target: int) -> list[int]:
        seen = {}
        for i, n in enumerate(nums):
            if target - n in seen:
                return [seen[target - n], i]
            seen[n] = i
{"name": "Alice", "age": 30, "tags": ["a", "b"], "address": {"city": "Paris", "zip": "75001"}}
\\boxed{\\frac{1}{2}} \\sqrt{2} x^2 + 3x - 4 = 0 therefore x = 1 or x = -4.
La capitale de la France est Paris. El cielo es azul. Der Hund ist braun. Москва — столица России.
中国的首都是北京。日本の首都は東京です。عاصمة مصر هي القاهرة.
The secret number hidden in the long document is 7421. Remember it: the passphrase is blue-harbor.
"""


def cache_root() -> Path:
    """Where llmbench keeps what it builds: $LLMBENCH_CACHE, else ~/.cache/llmbench."""
    env = os.environ.get("LLMBENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "llmbench"


def tiny_model_dir() -> Path:
    return cache_root() / "models" / f"{TINY_QWEN2}-{_VERSION}"


def ensure_tiny_model() -> Path:
    """Return the tiny-qwen2 directory, building it on first use (about a second, no network)."""
    target = tiny_model_dir()
    if (target / "config.json").exists() and (target / "tokenizer.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        _build(tmp)
        try:
            tmp.rename(target)  # atomic: a concurrent builder either wins or finds ours
        except OSError:
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_model_path(model: ModelConfig) -> str:
    """Where the backend loads `model` from: the built-in model's folder, else the config's id or path."""
    if model.builtin:
        from llmbench.errors import UserInputError

        if model.builtin != TINY_QWEN2:
            raise UserInputError(
                f"unknown built-in model '{model.builtin}'", hint=f"llmbench builds: {TINY_QWEN2}"
            )
        return str(ensure_tiny_model())
    return model.model


def _build(out: Path) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator([_CORPUS] * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
        model_max_length=32768,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.padding_side = "left"
    tokenizer.save_pretrained(out)

    config = Qwen2Config(  # type: ignore[call-arg]
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=32768,
        rope_theta=1_000_000.0,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),  # type: ignore[arg-type]
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),  # type: ignore[arg-type]
        torch_dtype="float32",
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.generation_config.do_sample = False
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a one-file model: a "writing shards" bar is noise on the user's terminal
    try:
        model.save_pretrained(out, safe_serialization=True)
    finally:
        hf_logging.enable_progress_bar()
