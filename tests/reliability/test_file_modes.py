"""Artifacts get the mode a plain open() would give them (0o666 & ~umask), so a teammate on a shared
server can read a study's files; temp-file writers would otherwise leave them 0600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tunelab.results.io import save_checkpoint, write_json, write_text


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_artifacts_follow_the_umask_like_open_does(tmp_path: Path, umask: None) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what any other tool would make
    files = [
        write_text(tmp_path / "report.html", "<html></html>"),
        write_json(tmp_path / "trials" / "0" / "config.json", {"a": 1}),
        save_checkpoint(tmp_path / "best_model.pt", {"w": torch.zeros(2)}, {"model": {}}),
    ]
    assert _mode(plain) == 0o644
    assert [_mode(f) for f in files] == [0o644] * 3
    assert _mode(tmp_path / "trials" / "0") == 0o755  # folders made on the way follow it too
    os.umask(0o077)  # a private umask stays private
    assert _mode(write_text(tmp_path / "private.txt", "x")) == 0o600
    assert not list(tmp_path.glob(".*.tmp"))  # no temp file left behind
