"""JSON mode for in-process generation: xgrammar masks each row's logits to that row's JSON Schema.

xgrammar is the engine vLLM's structured outputs use by default, so a "JSON mode" task means the
same thing on the Transformers backend as on vLLM.
"""

from __future__ import annotations

from typing import Any

from llmbench.config.models import ModelConfig
from llmbench.errors import BackendError, MissingDependencyError


class JsonGuide:
    """Compiles schemas against one model's tokenizer; `constraint` gives a logits processor per call."""

    def __init__(self, tokenizer: Any, model: Any, stop_token_ids: set[int], config: ModelConfig) -> None:
        try:
            import xgrammar
        except ImportError:
            raise MissingDependencyError(
                "xgrammar", "structured", purpose="JSON mode on the Transformers backend"
            ) from None
        if tokenizer is None:
            raise BackendError("JSON mode needs the model's tokenizer")
        info = xgrammar.TokenizerInfo.from_huggingface(
            tokenizer,
            vocab_size=model.config.get_text_config().vocab_size,  # the embedding may be padded past the tokenizer
            stop_token_ids=sorted(stop_token_ids),
        )
        self._compiler = xgrammar.GrammarCompiler(info)
        self._any_whitespace = config.json_whitespace == "any"

    def constraint(self, schemas: list[dict[str, Any] | None]) -> Any:
        """A fresh processor for one `generate` call (it keeps per-row state), one grammar per row."""
        from xgrammar.contrib.hf import LogitsProcessor

        compiled = [
            self._compiler.compile_json_schema(schema, any_whitespace=self._any_whitespace)
            if schema is not None
            else self._compiler.compile_builtin_json_grammar()
            for schema in schemas
        ]
        return LogitsProcessor(compiled)
