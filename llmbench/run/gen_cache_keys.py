"""What decides a generation, as a cache key: the model (its files' content, config, backend, libraries) and
the exact request (prompt and every generation parameter).

The model's files are fingerprinted by content: a local folder by the sha256 of every file (remembered per
file while its size, modification time and inode stay the same, so a folder is read once), a Hugging
Face snapshot by its commit. Rewritten weights, another revision, another dtype, quantisation, chat
template, batch size, backend or library version: each gives other keys, so an entry never outlives the
model it came from.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from dataclasses import fields as dataclass_fields
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmbench.hashing import stable_hash
from llmbench.run.gen_store import CacheStore
from llmbench.types import Completion, GenerationRequest

if TYPE_CHECKING:
    from pydantic import TypeAdapter

    from llmbench.backends.base import BackendInfo
    from llmbench.config.models import ModelConfig

# Model config fields that do not change what is generated: names, where the files lie (their content is
# fingerprinted instead), CPU threads, the share of GPU memory reserved, a server's timeouts and retries,
# prices and rate limits. Any other field (and any field added later) is part of the key.
OUTPUT_NEUTRAL = {
    "name",
    "model",
    "builtin",
    "tokenizer",
    "threads",
    "gpu_memory_utilization",
    "api",
    "prices",
    "rate_limits",
}
# Request fields that never reach the model: its id, its prefix-cache salt, the `reference` backend's answer.
REQUEST_NEUTRAL = {"request_id", "cache_salt", "reference_output"}
# What a cached completion leaves out: what was measured while it was generated (a cached answer took no
# time), and what the server said about that one request (retries, its own cache, warnings); the rest of a
# completion (its text, token counts, hashes, any other field it has) is the answer and is kept.
MEASURED = {
    "request_id",
    "error",
    "ttft_ms",
    "ttfot_ms",
    "latency_ms",
    "itl_ms",
    "queue_ms",
    "schedule_lag_ms",
    "sent_ns",
    "timing",
    "batch_size",
    "attempts",
    "raw_head",
    "warnings",
    "cached_prompt_tokens",
    "rate_wait_ms",
}
_SNAPSHOT = re.compile(r"[0-9a-f]{40}")
_CHUNK = 8 << 20


@dataclass(frozen=True)
class ModelIdentity:
    """One loaded model as the cache knows it: where its files are, their fingerprint, and its key."""

    name: str
    source: str  # the model folder, or `hub-id@commit`
    files_fp: str
    key: str  # everything about the model and its backend that decides an output


def model_identity(
    model: ModelConfig, model_path: str, info: BackendInfo, packages: dict[str, Any], store: CacheStore
) -> ModelIdentity | str:
    """The model's identity, or why its generations cannot be cached (the reason, as a phrase)."""
    if model.load_format == "dummy":
        return "random (dummy) weights"
    files = files_fingerprint(model_path, model.revision, store)
    if files is None:
        return f"no model files to fingerprint for '{model_path}' (a model served by name)"
    tokenizer = None
    if model.tokenizer and model.tokenizer != model_path:
        tokenizer = files_fingerprint(model.tokenizer, None, store)
        if tokenizer is None:
            return f"no tokenizer files to fingerprint for '{model.tokenizer}'"
    facts = {
        "files": files[1],
        "tokenizer": tokenizer[1] if tokenizer else None,
        "config": model.model_dump(mode="json", exclude=OUTPUT_NEUTRAL) | {"endpoint": model.api.endpoint},
        "backend": info.backend,
        "dtype": info.dtype,
        "device": info.device,
        "attention": info.attention_backend,
        "chat_template": info.chat_template_hash,
        "batch_size": info.max_batch_size,
        "packages": packages,  # every library a results file records: an upgrade starts afresh
    }
    return ModelIdentity(model.name, files[0], files[1], stable_hash(facts))


def files_fingerprint(path_or_id: str, revision: str | None, store: CacheStore) -> tuple[str, str] | None:
    """(source, fingerprint) of a model's files: a local folder by content, a hub snapshot by its commit;
    None where the files cannot be found on this host."""
    path = Path(path_or_id).expanduser()
    if path.is_dir():
        folder = path.resolve()
        if folder.parent.name == "snapshots" and _SNAPSHOT.fullmatch(folder.name):
            return str(folder), f"hub:{folder.name}"  # a hub snapshot folder: its commit names its content
        return str(folder), folder_fingerprint(folder, store)
    commit = hub_commit(path_or_id, revision)
    return (f"{path_or_id}@{commit}", f"hub:{commit}") if commit else None


def hub_commit(repo_id: str, revision: str | None) -> str | None:
    """The commit of the snapshot of `repo_id` (at `revision`) in the local Hugging Face cache, if any."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    except Exception:  # not installed, or not a repository id at all
        return None
    return Path(found).parent.name if isinstance(found, str) else None


def folder_fingerprint(folder: Path, store: CacheStore) -> str:
    """A hash over every file's relative path and sha256 (hidden files and folders left out)."""
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    return stable_hash([(p.relative_to(folder).as_posix(), file_sha256(p, store)) for p in files])


def file_sha256(path: Path, store: CacheStore) -> str:
    """The file's sha256, read from the store while the file is unchanged, computed (and stored) otherwise."""
    real = path.resolve()
    st = real.stat()
    known = store.file_hash(str(real), st.st_size, st.st_mtime_ns, st.st_ino)
    if known is not None:
        return known
    digest = hashlib.sha256()
    with real.open("rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    store.remember_file_hash(str(real), st.st_size, st.st_mtime_ns, st.st_ino, digest.hexdigest())
    return digest.hexdigest()


def request_key(model_key: str, request: GenerationRequest) -> str:
    """The key of one request on one model: every field that reaches the model (the exact prompt, tools,
    and every generation parameter, the seed included)."""
    fields = {k: v for k, v in asdict(request).items() if k not in REQUEST_NEUTRAL}
    blob = json.dumps(
        {"model": model_key, "request": fields}, sort_keys=True, ensure_ascii=False, default=str
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def kept(completion: Completion) -> dict[str, Any]:
    """What the cache stores of a completion: all of it but its measurements."""
    return {
        k: v
        for k, v in _completion_adapter().dump_python(completion, mode="json").items()
        if k not in MEASURED
    }


def restored(request_id: str, fields: dict[str, Any]) -> Completion:
    """A cached completion for `request_id`: the stored fields, no timings."""
    known = {f.name for f in dataclass_fields(Completion)} - MEASURED
    return _completion_adapter().validate_python(
        {k: v for k, v in fields.items() if k in known} | {"request_id": request_id}
    )


@cache
def _completion_adapter() -> TypeAdapter[Completion]:
    """Completions to JSON and back, nested records included (built on first use: it takes a while)."""
    from pydantic import TypeAdapter

    return TypeAdapter(Completion)
