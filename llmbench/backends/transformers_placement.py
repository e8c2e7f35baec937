"""Where the Transformers backend puts a model: random (dummy) weights placed as real ones are.

Real weights load with `from_pretrained(device_map="auto")`, which spreads the layers over every visible
GPU. A dummy model is built on the meta device (no memory), given the device map `"auto"` computes for
it, allocated there layer by layer, drawn at random in place, and dispatched with accelerate's hooks as
`from_pretrained` does: `qwen2.5-7b-dummy` then runs on the GPUs `qwen2.5-7b` runs on.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

from llmbench.errors import MissingDependencyError

# A device map: module (or parameter) name -> GPU index, "cpu" or "disk"; "" names the whole model.
DeviceMap = dict[str, int | str]


def auto_device_map(model: Any, max_memory: dict[int | str, int | str] | None = None) -> DeviceMap:
    """The map `from_pretrained(device_map="auto")` computes for `model` (meta tensors do): the GPUs' free
    memory balanced by size, a decoder layer never split; `max_memory` caps each device (None: what is free)."""
    _require_accelerate()
    from transformers.integrations.accelerate import get_balanced_memory, infer_auto_device_map

    no_split = getattr(model, "_no_split_modules", None)
    balanced = get_balanced_memory(
        model, max_memory=dict(max_memory) if max_memory else None, no_split_module_classes=no_split
    )
    placed = infer_auto_device_map(
        model,
        max_memory=balanced,
        no_split_module_classes=no_split,
        no_placement_params=getattr(model, "_no_placement_params", None),
    )
    return dict(placed)


def empty_model(transformers: Any, torch: Any, arch: Any, dtype: Any, trust_remote_code: bool) -> Any:
    """The architecture's model on the meta device: shapes and dtypes, no memory, no weights drawn."""
    with torch.device("meta"):
        return transformers.AutoModelForCausalLM.from_config(
            arch, dtype=dtype, trust_remote_code=trust_remote_code
        )


def materialise(model: Any, device_map: DeviceMap, torch: Any) -> None:
    """Give every parameter and buffer memory on its mapped device ("disk" -> the CPU), then draw the weights
    there. The model's own initialisation recomputes the non-persistent buffers `to_empty` leaves as garbage
    (rotary `inv_freq` tables) and ties the embeddings again."""
    from transformers.integrations.accelerate import get_device

    for name, module in model.named_modules():
        own = chain(module.named_parameters(recurse=False), module.named_buffers(recurse=False))
        first = next((n for n, _ in own), None)
        if first is None:
            continue
        device = get_device(device_map, f"{name}.{first}" if name else first, valid_torch_device=True)
        module.to_empty(
            device=torch.device(f"cuda:{device}" if isinstance(device, int) else device), recurse=False
        )
    with torch.no_grad():
        model.init_weights()


def dummy_model(
    transformers: Any, torch: Any, arch: Any, dtype: Any, *, cuda: bool, load_kwargs: dict[str, Any]
) -> Any:
    """Random weights in `arch`'s shape, placed where `from_pretrained` with `load_kwargs` would put real ones:
    on the CPU without CUDA, else by the device map given there or the one `"auto"` computes."""
    model = empty_model(transformers, torch, arch, dtype, bool(load_kwargs.get("trust_remote_code")))
    requested = load_kwargs.get("device_map")
    if not cuda:
        device_map: DeviceMap = {"": "cpu"}
    elif isinstance(requested, dict):
        device_map = dict(requested)
    else:
        device_map = auto_device_map(model, load_kwargs.get("max_memory"))
    materialise(model, device_map, torch)
    if cuda:
        from accelerate import dispatch_model

        dispatch_model(model, device_map=device_map)  # hooks that carry activations from GPU to GPU
    return model


def _require_accelerate() -> None:
    try:
        import accelerate  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "accelerate", purpose="placing a model over the GPUs (device_map)"
        ) from None
