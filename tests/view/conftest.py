"""Results files and a running viewer for the tests of `llmbench view`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmbench.view.server import ViewServer, make_server
from tests.view.sample_runs import write_pair, write_study


@pytest.fixture(scope="session")
def pair_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("view") / "results"
    write_pair(folder)
    return folder


@pytest.fixture(scope="session")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_study(tmp_path_factory.mktemp("view-study") / "demo")


def _serving(paths: list[Path]) -> Iterator[ViewServer]:
    server = make_server(paths)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(timeout=60)
        server.server_close()


@pytest.fixture(scope="session")
def viewer(pair_dir: Path) -> Iterator[ViewServer]:
    yield from _serving([pair_dir])


@pytest.fixture(scope="session")
def study_viewer(study_dir: Path) -> Iterator[ViewServer]:
    yield from _serving([study_dir])
