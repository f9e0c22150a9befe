"""The training engine: ``fit`` a config, get the best weights and their metrics."""

from __future__ import annotations

from tunelab.train.callbacks import BaseCallback, Callback, Diverged, EpochReport, FitContext, StopTraining
from tunelab.train.result import RunResult, evaluate, predict
from tunelab.train.trainer import fit

__all__ = [
    "BaseCallback",
    "Callback",
    "Diverged",
    "EpochReport",
    "FitContext",
    "RunResult",
    "StopTraining",
    "evaluate",
    "fit",
    "predict",
]
