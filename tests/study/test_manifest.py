"""The study manifest is written like a results file: atomically, with the permissions the umask gives."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from llmbench.study.manifest import StudyManifest, read_manifest, write_manifest


def test_the_manifest_follows_the_umask_and_reads_back(tmp_path: Path) -> None:
    manifest = StudyManifest(study="s", study_file="s.yaml", study_hash="abc")
    old = os.umask(0o022)
    try:
        path = write_manifest(manifest, tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
    again = read_manifest(tmp_path)
    assert again is not None and again.study_hash == "abc"
