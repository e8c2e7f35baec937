"""Is the model there to load? Answered in seconds, before a run writes anything.

Without this check a missing model is discovered by the loader, which on a machine without network
retries for minutes before failing. Backends that load weights on this host say so with a
`loads_weights` class attribute; the rest (a server, the reference backend) are not checked here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from llmbench.backends.base import backends
from llmbench.errors import UserInputError

if TYPE_CHECKING:
    from llmbench.config.models import ModelConfig

HUB_TIMEOUT_S = 5.0
ALTERNATIVES = "qwen2.5-7b-dummy (random weights, no download) or tiny-qwen2"


def check_model_available(model: ModelConfig) -> None:
    """Raise one clear line (exit 2) when `model`'s weights are neither local nor downloadable now."""
    backend = backends.get(model.backend)
    if not getattr(backend, "loads_weights", False) or model.builtin or model.load_format == "dummy":
        return
    source = model.model
    if Path(source).expanduser().is_dir():
        return
    if source.startswith((".", "/", "~")) or source.count("/") != 1:
        raise UserInputError(f"model '{model.name}': no such directory: {source}")
    if in_hub_cache(source, model.revision):
        return
    if _offline():
        why = "HF_HUB_OFFLINE is set"
    else:
        problem = _hub_problem(source, model.revision)
        if problem is None:
            return  # the backend downloads it
        why = problem
    gpu = ""
    if getattr(backend, "needs_gpu", False) and not has_gpu():
        gpu = f"; note that this machine has no GPU, which the {model.backend} backend needs"
    raise UserInputError(
        f"model '{model.name}' ({source}) is not on this machine and cannot be downloaded: {why}{gpu}",
        hint=f"download it with `hf download {source}`, point --model at a local model directory, "
        f"or use {ALTERNATIVES}",
    )


def has_gpu() -> bool:
    """Whether an NVIDIA driver is present (without importing torch or CUDA)."""
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists()


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def in_hub_cache(repo_id: str, revision: str | None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    except Exception:  # a malformed id: the Hub check below names the problem
        return False
    return isinstance(found, str)


def _hub_problem(repo_id: str, revision: str | None) -> str | None:
    """Why the Hub cannot give us `repo_id` now; None when it can."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        HfApi().model_info(repo_id, revision=revision, timeout=HUB_TIMEOUT_S)
    except GatedRepoError:
        return "it is gated on the Hugging Face Hub (accept its licence there and `hf auth login`)"
    except RepositoryNotFoundError:
        return "the Hugging Face Hub has no such model"
    except HfHubHTTPError as exc:
        return f"the Hugging Face Hub answered {exc}".splitlines()[0]
    except Exception as exc:  # no network, DNS, proxy, timeout
        return f"the Hugging Face Hub is unreachable ({type(exc).__name__})"
    return None
