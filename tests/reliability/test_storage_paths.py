"""A relative storage path means the working directory of each call, also within one process."""

from __future__ import annotations

import os
from pathlib import Path

import optuna

from tests.reliability.common import study_file
from tunelab.tune import TuneOptions, load_study_config, tune


def test_a_relative_default_storage_follows_the_working_directory(tmp_path: Path) -> None:
    here = Path.cwd()
    cfg = load_study_config(study_file(tmp_path / "s.yaml", budget={"n_trials": 1}))
    try:
        for sub in ("a", "b"):  # the same relative URL, sqlite:///runs/tunelab.db, in two directories
            (tmp_path / sub).mkdir()
            os.chdir(tmp_path / sub)
            tune(cfg, TuneOptions(save_dir="runs", study_name="same", report=False))
    finally:
        os.chdir(here)
    for sub in ("a", "b"):
        db = f"sqlite:///{tmp_path / sub / 'runs' / 'tunelab.db'}"
        assert optuna.get_all_study_names(db) == ["same"]
        assert len(optuna.load_study(study_name="same", storage=db).trials) == 1
