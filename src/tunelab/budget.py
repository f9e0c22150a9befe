"""Data-aware training defaults: budgets in optimizer steps, converted to epochs for this data.

A fixed "batch 32, patience 15 epochs" is 32 optimizer steps on 40 training series and
thousands on 40,000.  :func:`resolve_defaults` picks the training knobs the user left unset from
the size of the training split, so every run gets enough optimizer steps to learn (and no more
than it needs on large data), and returns the config with the concrete numbers (so the saved
resolved config says what ran) plus one line saying what it picked.

Rules (``n`` = training series after the validation split):

* batch size: ``n / 10`` rounded down to a power of two, clamped to 8..128 -- at least ~10 steps
  per epoch on small data, full-width batches on large data;
* early-stopping patience: :data:`PATIENCE_STEPS` optimizer steps, at least 5 epochs;
* plateau-schedule patience: a third of that, at least 2 epochs;
* epoch ceiling: :data:`MAX_STEPS` steps, at least 20 epochs (so at least ``MIN_STEPS`` steps
  before the ceiling), at most 1000 epochs;
* class-weighted loss (``1 / sqrt(class count)``, see ``tunelab.train.losses.class_weights``)
  when the largest class has more than :data:`IMBALANCE` times the smallest one's training series.

A value the user set (config file, dotted override or flag: pydantic's ``model_fields_set``)
is never changed.  Imports only ``config`` (no torch), so tune/ and the CLI can both use it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tunelab.config import ExperimentConfig

__all__ = ["IMBALANCE", "MAX_STEPS", "MIN_STEPS", "PATIENCE_STEPS", "DataSize", "data_size", "resolve_defaults"]

MIN_STEPS = 400  # no default run ends (by early stopping) before this many optimizer steps
PATIENCE_STEPS = 400
MAX_STEPS = 4000
IMBALANCE = 3.0


@dataclass(frozen=True)
class DataSize:
    """What the defaults depend on: training-split size and the class counts in it."""

    n_train: int
    class_counts: Sequence[int] = ()

    @property
    def imbalance(self) -> float:
        counts = [c for c in self.class_counts if c > 0]
        return max(counts) / min(counts) if len(counts) > 1 else 1.0


def data_size(splits: Any) -> DataSize:
    """The training split's size and class counts of prepared ``Splits`` (``tunelab.data.prepare``)."""
    counts: list[int] = []
    if splits.meta.task == "classification":
        counts = [int(c) for c in splits.train.y.long().bincount(minlength=splits.meta.n_classes).tolist()]
    return DataSize(len(splits.train), counts)


def _batch_size(n_train: int) -> int:
    target = max(1, n_train // 10)
    return min(128, max(8, 2 ** int(math.log2(target))))


def resolve_defaults(cfg: ExperimentConfig, size: DataSize) -> tuple[ExperimentConfig, str]:
    """``cfg`` with its unset training knobs filled from ``size``, and one line saying what was picked."""
    tc = cfg.train
    es = tc.early_stopping
    set_train, set_es = tc.model_fields_set, es.model_fields_set
    batch = tc.batch_size if "batch_size" in set_train else _batch_size(size.n_train)
    steps = max(1, math.ceil(size.n_train / batch)) if tc.steps_per_epoch is None else tc.steps_per_epoch
    steps = max(1, math.ceil(steps / tc.grad_accum))  # optimizer steps per epoch
    patience = es.patience if "patience" in set_es else max(5, math.ceil(PATIENCE_STEPS / steps))
    plateau = tc.plateau_patience if "plateau_patience" in set_train else max(2, math.ceil(PATIENCE_STEPS / 3 / steps))
    max_epochs = tc.max_epochs if "max_epochs" in set_train else min(1000, max(20, math.ceil(MAX_STEPS / steps)))
    class_weights = cfg.loss.class_weights
    if "class_weights" not in cfg.loss.model_fields_set and size.imbalance > IMBALANCE:
        class_weights = True
    new_es = es.model_copy(update={"patience": patience})
    new_train = tc.model_copy(
        update={"batch_size": batch, "max_epochs": max_epochs, "plateau_patience": plateau, "early_stopping": new_es}
    )
    new_loss = cfg.loss.model_copy(update={"class_weights": class_weights})
    out = cfg.model_copy(update={"train": new_train, "loss": new_loss})
    pat = "off" if patience is None else f"{patience * steps} steps ({patience} epochs)"
    line = (
        f"data-aware defaults ({size.n_train} training series): batch {batch}, {steps} steps/epoch, "
        f"max {max_epochs} epochs ({max_epochs * steps} steps), patience {pat}"
    )
    if class_weights and not cfg.loss.class_weights:
        line += f", class-weighted loss (imbalance {size.imbalance:.1f}x)"
    return out, line
