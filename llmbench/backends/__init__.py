"""Backends, registered by name and imported only when chosen."""

from llmbench.backends.base import (
    Backend,
    BackendInfo,
    Completion,
    GenerationParams,
    GenerationRequest,
    backends,
)

backends.add_lazy("transformers", "llmbench.backends.transformers:TransformersBackend")
backends.add_lazy("vllm", "llmbench.backends.vllm:VLLMBackend")
backends.add_lazy("openai", "llmbench.backends.openai:OpenAIBackend")
backends.add_lazy("reference", "llmbench.backends.reference:ReferenceBackend")
backends.add_entry_points("llmbench.backends")

__all__ = ["Backend", "BackendInfo", "Completion", "GenerationParams", "GenerationRequest", "backends"]
