"""The trainer's only extension mechanism: callbacks that observe epochs and may stop a run.

The trainer knows nothing about Optuna or trackers.  Pruning is a callback that raises
``optuna.TrialPruned``; a tracker is a callback that logs each report.  A callback stops a run
cleanly by raising :class:`StopTraining` (the best weights so far are kept).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from torch import nn

    from tunelab.config import ExperimentConfig
    from tunelab.data.base import DataMeta

__all__ = ["Callback", "Diverged", "EarlyStopper", "EpochReport", "FitContext", "StopTraining"]


class StopTraining(Exception):
    """Raised by a callback to end training now, keeping the best weights so far."""


class Diverged(Exception):
    """The loss became NaN or infinite (the tuner records the trial as pruned, 'diverged')."""

    def __init__(self, epoch: int, what: str = "loss") -> None:
        super().__init__(f"diverged at epoch {epoch}: {what} is not finite")
        self.epoch = epoch


@dataclass
class EpochReport:
    """What one epoch produced.  ``metrics`` keys: train_loss, val_loss, val_<metric> (acc, f1,
    mse, mae, snr_db, ...), lr/<group> per parameter group, grad_norm (mean, before clipping),
    clip_frac (share of clipped steps), seconds, and extra/<name> for a model's own scalars."""

    epoch: int  # 1-based
    metrics: dict[str, float]
    improved: bool = False  # the monitored metric reached a new best this epoch
    member: int = 0  # index inside a trial pack (0 for an ordinary run)


@dataclass
class FitContext:
    """Facts about the run, handed to every callback (read-only but for ``stop_at``)."""

    config: ExperimentConfig
    meta: DataMeta
    model: nn.Module
    n_params: int
    run_dir: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)
    #: A clock time (``time.time()``) at which a callback will stop this run at its next epoch end,
    #: set in ``on_fit_start`` (the study's deadline, a time share); the learning rate anneals to it.
    stop_at: float | None = None


@runtime_checkable
class Callback(Protocol):
    """Observe a fit.  Every method is optional in spirit: subclass :class:`BaseCallback`."""

    def on_fit_start(self, ctx: FitContext) -> None: ...

    def on_epoch_end(self, ctx: FitContext, report: EpochReport) -> None: ...

    def on_fit_end(self, ctx: FitContext, result: Any) -> None: ...


class BaseCallback:
    """No-op implementations of :class:`Callback`'s methods."""

    def on_fit_start(self, ctx: FitContext) -> None:
        return None

    def on_epoch_end(self, ctx: FitContext, report: EpochReport) -> None:
        return None

    def on_fit_end(self, ctx: FitContext, result: Any) -> None:
        return None


__all__.append("BaseCallback")


class EarlyStopper:
    """Patience on one monitored metric (``mode`` "min" or "max"); one per run or pack member."""

    def __init__(self, mode: str, patience: int | None, min_delta: float) -> None:
        self.sign = 1.0 if mode == "min" else -1.0
        self.patience, self.min_delta = patience, min_delta
        self.best = math.inf
        self.bad = 0

    def update(self, value: float) -> bool:
        """Record ``value``; True when it is a new best."""
        score = self.sign * value
        if score < self.best - self.min_delta:
            self.best, self.bad = score, 0
            return True
        self.bad += 1
        return False

    @property
    def stop(self) -> bool:
        return self.patience is not None and self.bad >= self.patience
