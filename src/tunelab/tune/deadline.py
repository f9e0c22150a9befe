"""The study's time budget bounds the running trials, not only when the last one may start.

Optuna's ``timeout`` starts no trial after it; a trial that began a second before could run for
ten more minutes.  :class:`StudyDeadline` is a fit callback that ends a trial at its first epoch
boundary past the study's deadline by raising :class:`~tunelab.train.callbacks.StopTraining`:
the trial keeps its best weights so far, is evaluated on validation and test as usual and ends
**COMPLETE** (stop reason ``study timeout``).  Complete rather than pruned: its best-so-far model
is a real model, may be the study's best, and the ensemble and ``evaluate`` can use it.  A pack's
members each stop the same way.  The study's total wall time is then the timeout plus at most one
epoch, the final evaluations and the report.
"""

from __future__ import annotations

import time
from typing import Any

from tunelab.train.callbacks import BaseCallback, EpochReport, FitContext, StopTraining

__all__ = ["STOP_REASON", "StudyDeadline", "remaining"]

STOP_REASON = "study timeout"


class StudyDeadline(BaseCallback):
    """Stop training at the first epoch end at or after ``deadline`` (``time.time()`` seconds,
    so worker processes share it)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def on_epoch_end(self, ctx: FitContext, report: EpochReport) -> None:
        if time.time() >= self.deadline:
            raise StopTraining(STOP_REASON)

    def __reduce__(self) -> tuple[Any, ...]:  # picklable for worker processes
        return (StudyDeadline, (self.deadline,))


def remaining(deadline: float | None) -> float | None:
    """Seconds left before ``deadline`` (None: no deadline); never below a millisecond, so
    Optuna's ``timeout`` stays valid and starts no further trial."""
    return None if deadline is None else max(1e-3, deadline - time.time())
