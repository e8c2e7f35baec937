"""One builder of vLLM's options: the managed server's command line means the engine the in-process backend builds.

The flag spelling is checked without vLLM; the equivalence is checked with vLLM's own server parser
(no model is loaded: the command line is parsed, never run).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llmbench.backends.managed_server import ManagedVLLMServer
from llmbench.backends.vllm_options import (
    IN_PROCESS_ONLY,
    NOT_ON_SERVER,
    ON_SWITCH_ONLY,
    architecture_config_dir,
    server_flags,
    vllm_options,
)
from llmbench.config.models import MODELS_DIR, ModelConfig, load_model_config
from llmbench.errors import ConfigError

MODEL_PATH = "/models/tiny-qwen2"  # parsed, never opened


# ------------------------------------------------------------------ the flag spelling (no vLLM needed)


def test_flags_spell_switches_both_ways_structures_as_json_and_leave_none_out() -> None:
    options = {
        "model": MODEL_PATH,
        "enforce_eager": True,
        "enable_chunked_prefill": False,
        "max_num_batched_tokens": 256,
        "gpu_memory_utilization": 0.5,
        "structured_outputs_config": {"backend": "xgrammar", "disable_any_whitespace": True},
        "revision": None,
    }
    assert server_flags(options) == [
        "--model",
        MODEL_PATH,
        "--enforce-eager",
        "--no-enable-chunked-prefill",
        "--max-num-batched-tokens",
        "256",
        "--gpu-memory-utilization",
        "0.5",
        "--structured-outputs-config",
        '{"backend": "xgrammar", "disable_any_whitespace": true}',
    ]


def test_an_on_switch_only_flag_set_to_false_is_refused_not_dropped() -> None:
    assert server_flags({"disable_log_stats": True}) == ["--disable-log-stats"]
    with pytest.raises(ConfigError, match=r"disable_log_stats.*only as an on-switch"):
        server_flags({"disable_log_stats": False})


def test_an_option_the_server_has_no_flag_for_is_refused_not_dropped() -> None:
    with pytest.raises(ConfigError, match=r"model_weights.*no --model-weights flag"):
        server_flags({"model_weights": "/weights"})


def test_the_in_process_engine_alone_turns_stats_off() -> None:
    cfg = ModelConfig(name="m", model="m")
    built = {
        in_process: vllm_options(
            cfg, MODEL_PATH, on_cpu=True, has_tokenizer=True, architecture_dir=None, in_process=in_process
        )
        for in_process in (True, False)
    }
    assert built[True]["disable_log_stats"] is True
    assert IN_PROCESS_ONLY.isdisjoint(built[False])
    assert {k: v for k, v in built[True].items() if k not in IN_PROCESS_ONLY} == built[False]


def test_the_config_has_the_last_word_even_over_in_process_defaults() -> None:
    cfg = ModelConfig(name="m", model="m", engine_args={"vllm": {"disable_log_stats": False, "seed": 7}})
    built = vllm_options(
        cfg, MODEL_PATH, on_cpu=True, has_tokenizer=True, architecture_dir=None, in_process=True
    )
    assert built["disable_log_stats"] is False and built["seed"] == 7


def test_a_loose_architecture_file_becomes_a_directory_holding_its_config_json(tmp_path: Path) -> None:
    arch = tmp_path / "tiny-arch.json"
    arch.write_text('{"model_type": "qwen2",\n "num_hidden_layers": 2}')
    found = architecture_config_dir(str(arch), tmp_path / "scratch")
    assert found is not None
    assert json.loads((Path(found) / "config.json").read_text()) == {
        "model_type": "qwen2",
        "num_hidden_layers": 2,
    }
    (tmp_path / "config.json").write_text("{}")
    assert architecture_config_dir(str(tmp_path / "config.json"), tmp_path) == str(tmp_path)
    with pytest.raises(ConfigError, match="no such file"):
        architecture_config_dir(str(tmp_path / "missing.json"), tmp_path)


# ------------------------------------------------------------------ against vLLM's own server parser


@pytest.fixture(scope="module")
def server_parser() -> Any:
    """The parser `python -m vllm.entrypoints.openai.api_server` reads its command line with."""
    pytest.importorskip("vllm")
    try:
        from vllm.entrypoints.launchers.cli_args import make_arg_parser
    except ImportError:  # vLLM before the launchers package
        from vllm.entrypoints.openai.cli_args import make_arg_parser  # type: ignore[no-redef]
    try:
        from vllm.utils.argparse_utils import FlexibleArgumentParser
    except ImportError:  # vLLM before argparse_utils
        from vllm.utils import FlexibleArgumentParser  # type: ignore[no-redef,attr-defined]
    return make_arg_parser(FlexibleArgumentParser())


def _tiny(**overrides: Any) -> Callable[[Path], ModelConfig]:
    def build(_: Path) -> ModelConfig:
        return load_model_config(MODELS_DIR / "tiny-qwen2.yaml").model_copy(update=overrides)

    return build


def _with_architecture_file(tmp_path: Path) -> ModelConfig:
    arch = tmp_path / "tiny-arch.json"
    arch.write_text(json.dumps({"model_type": "qwen2", "num_hidden_layers": 2}))
    return ModelConfig(name="tiny-dummy", model=str(tmp_path), load_format="dummy", architecture=str(arch))


def _every_field(tmp_path: Path) -> ModelConfig:
    tokenizer = tmp_path / "tokenizer"
    tokenizer.mkdir()
    return _tiny(
        revision="main",
        tokenizer=str(tokenizer),
        kv_cache_dtype="fp8",
        tensor_parallel_size=2,
        distributed_executor_backend="mp",
        gpu_memory_utilization=0.5,
        enable_prefix_caching=False,
        enforce_eager=False,
        max_num_seqs=4,
        trust_remote_code=True,
        engine_args={
            "vllm": {
                "disable_log_stats": True,
                "seed": 7,
                "block_size": 32,
                "override_generation_config": {"temperature": 0.5},
            }
        },
    )(tmp_path)


CONFIGS: dict[str, Callable[[Path], ModelConfig]] = {
    **{p.stem: (lambda _, p=p: load_model_config(p)) for p in sorted(MODELS_DIR.glob("tiny-qwen2*.yaml"))},
    "chunked-prefill-off": _tiny(
        engine_args={"vllm": {"enable_chunked_prefill": False, "max_num_batched_tokens": 256}}
    ),
    "bnb-4bit": _tiny(quantization="bnb-4bit", dtype="bfloat16"),
    "architecture-file": _with_architecture_file,
    "every-field": _every_field,
}


def _same(field: str, served: Any, built: Any) -> bool:
    if field == "hf_config_path":  # each side's own copy of one architecture
        return bool(
            json.loads((Path(served) / "config.json").read_text())
            == json.loads((Path(built) / "config.json").read_text())
        )
    if dataclasses.is_dataclass(served) and isinstance(built, dict):  # parsed from JSON vs. given as a dict
        return bool(served == type(served)(**built))
    return bool(served == built)


@pytest.mark.vllm
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_managed_server_gets_the_engine_args_of_the_in_process_engine(
    name: str, server_parser: Any, tmp_path: Path
) -> None:
    import torch
    from vllm.engine.arg_utils import AsyncEngineArgs

    from llmbench.backends.vllm_engine import engine_args

    cfg = CONFIGS[name](tmp_path)
    model_path = str(tmp_path)  # offline, vLLM looks a model path that does not exist up in the Hub cache
    on_cpu = not torch.cuda.is_available()
    arch_dir = architecture_config_dir(cfg.architecture, tmp_path / "engine")
    built = engine_args(cfg, model_path, on_cpu, True, arch_dir)
    options = vllm_options(
        cfg, model_path, on_cpu=on_cpu, has_tokenizer=True, architecture_dir=arch_dir, in_process=True
    )
    user_set = set(cfg.engine_args.get("vllm", {}))
    compared = set(options) - (IN_PROCESS_ONLY - user_set)
    with contextlib.closing(ManagedVLLMServer(cfg, model_path, port=8000)) as server:
        served = AsyncEngineArgs.from_cli_args(server_parser.parse_args(server.command()[3:]))
        differ = {
            f: (getattr(served, f), getattr(built, f))
            for f in sorted(compared)
            if not _same(f, getattr(served, f), getattr(built, f))
        }
    assert not differ, f"server vs in-process engine args: {differ}"
    if "disable_log_stats" not in user_set:
        assert served.disable_log_stats is False  # the server's /metrics needs its stats


@pytest.mark.vllm
def test_the_switch_sets_match_the_installed_server_parser(server_parser: Any) -> None:
    from vllm.engine.arg_utils import AsyncEngineArgs

    def parses(args: list[str]) -> bool:
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                server_parser.parse_args(args)
        except SystemExit:
            return False
        return True

    def known(flag: str) -> bool:
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                _, unknown = server_parser.parse_known_args([flag, "1"])
        except SystemExit:  # a flag it knows, with a value it refuses
            return True
        return flag not in unknown

    fields = [f.name for f in dataclasses.fields(AsyncEngineArgs) if not f.name.startswith("_")]
    switches = [f for f in fields if parses(["--" + f.replace("_", "-")])]
    assert {f for f in switches if not parses(["--no-" + f.replace("_", "-")])} == ON_SWITCH_ONLY
    assert {f for f in fields if not known("--" + f.replace("_", "-"))} == NOT_ON_SERVER
