"""A loaded model kept across runs: a study runs every quality suite of a model on one load.

`run_suite` without a session loads the backend itself and closes it at the end; with one it borrows
the session's backend (loading it on first use) and leaves it open for the next suite. The load time is
measured once, at that first load, and every run on the session reports the same figure beside
`performance.load_shared_with`, so a leaderboard counts it once.
"""

from __future__ import annotations

from llmbench.backends.base import Backend, BackendInfo, backends
from llmbench.config.models import ModelConfig
from llmbench.testing.tinymodel import resolve_model_path


class BackendSession:
    """One model, loaded at most once, for as many runs as use it; `close()` releases it."""

    def __init__(self, model: ModelConfig) -> None:
        self.model = model
        self.backend: Backend | None = None
        self.info: BackendInfo | None = None
        self.model_path: str | None = None
        self.first_run: str | None = None  # the run that paid for the load

    def acquire(self, run_id: str) -> tuple[Backend, BackendInfo, str]:
        """The loaded backend, its info and the model path; loads on the first call."""
        if self.backend is None or self.info is None or self.model_path is None:
            self.model_path = resolve_model_path(self.model)
            self.backend = backends.get(self.model.backend)(self.model, self.model_path)  # type: ignore[call-arg]
            self.info = self.backend.load()
            self.first_run = run_id
        return self.backend, self.info, self.model_path

    @property
    def loaded(self) -> bool:
        return self.backend is not None

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
        self.backend = None
        self.info = None

    def __enter__(self) -> BackendSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
