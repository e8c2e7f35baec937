"""A tracking URI where no server answers is one clear line at once, not minutes of MLflow's retries."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from llmbench import api
from llmbench.errors import UserInputError
from tests.export.helpers import needs, two_runs, write_runs


def test_a_tracking_server_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    needs("mlflow")
    (path,) = write_runs(tmp_path, two_runs()[:1])
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UserInputError, match="does not answer") as info:
        api.export([path], "mlflow", tracking_uri=f"http://127.0.0.1:{port}")
    assert "\n" not in str(info.value) and "--tracking-uri" in str(info.value)
