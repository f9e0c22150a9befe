"""Tiny, fast studies: a few trials of a few epochs on a few dozen short sequences."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

import tunelab  # noqa: F401  (registers the models)
from tests.helpers import no_study_reference, tiny_splits  # noqa: F401  (an autouse fixture)
from tunelab.tune import StudyConfig, TuneOptions, study_from_mapping

optuna.logging.set_verbosity(optuna.logging.ERROR)
torch.set_num_threads(1)  # the test machine is shared: one thread per process is fastest

TINY_BASE: dict[str, Any] = {
    "model": {"name": "gru", "hidden_dim": 8, "num_layers": 1, "dropout": 0.0},
    "train": {"max_epochs": 2, "batch_size": 16, "schedule": "none"},
    "loss": {"temperature_scaling": False},
    "device": "cpu",
}


def tiny_study(**kw: Any) -> StudyConfig:
    """A study of the tiny GRU; keyword arguments replace top-level study keys."""
    data: dict[str, Any] = {
        "name": "t",
        "base": TINY_BASE,
        "space": {"train.lr": {"low": 1e-3, "high": 3e-2, "log": True}, "model.hidden_dim": [4, 8]},
        "budget": {"n_trials": 2},
    }
    data.update(kw)
    return study_from_mapping(data)


def options(tmp_path: Path, **kw: Any) -> TuneOptions:
    return TuneOptions(save_dir=tmp_path, report=False, **kw)


@pytest.fixture(scope="session")
def splits() -> Any:
    return tiny_splits(n=48, t=8)


#: tiny built-in synthetic gestures, as `tunelab tune` flags
GESTURES_CLI = [
    "--dataset",
    "synthetic_gestures",
    "data.options.n=48",
    "data.options.classes=3",
    "data.options.min_len=6",
    "data.options.max_len=12",
]
#: `tunelab tune` flags for a tiny, fast study on them (CLI tests)
TINY_CLI = [*GESTURES_CLI, "model.hidden_dim=8", "--device", "cpu"]
