"""The study's time budget bounds the running trials, not only when the last one may start.

Optuna's ``timeout`` starts no trial after it; a trial that began a second before could run for
ten more minutes.  :class:`StudyDeadline` is a fit callback that ends a trial at its first epoch
boundary past the study's deadline by raising :class:`~tunelab.train.callbacks.StopTraining`:
the trial keeps its best weights so far, is evaluated on validation and test as usual and ends
**COMPLETE** (stop reason ``study timeout``).  Complete rather than pruned: its best-so-far model
is a real model, may be the study's best, and the ensemble and ``evaluate`` can use it.  A pack's
members each stop the same way.  The epoch running at the deadline does not run to its end: the
training loop cuts it after the current optimizer step once every member it trains is due
(``FitContext.stop_at``) and evaluates it, so a slow epoch (long series on a CPU) cannot carry a
trial far past the budget.  The study's total wall time is then the timeout plus a step, an
evaluation, the final evaluations and the report.

Queued trials (the portfolio's known-good configurations, ``--enqueue``) share the time: a
trial that starts while ``n`` others wait in the queue stops (cutting its epoch) at ``1/(n+1)`` of
the time left (stop reason ``time share``), so a short budget on a slow machine still tries every
queued configuration instead of spending it all on the first.

A run that will be stopped this way knows when (``FitContext.stop_at``): over the last
``train.deadline_anneal`` of its time its learning rate decays linearly to zero at the epoch end
where it stops (:meth:`tunelab.train.member.Member.steps_left`), so a model cut short by the
budget ends annealed rather than mid-flight at its full learning rate (budget-aware schedules:
Li et al., "Budgeted Training", ICLR 2020).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tunelab.results.attrs import STOP
from tunelab.train.callbacks import BaseCallback, EpochReport, FitContext, StopTraining

__all__ = ["SHARE_REASON", "STOP_REASON", "StudyDeadline", "remaining"]

STOP_REASON = STOP.TIMEOUT
SHARE_REASON = STOP.SHARE


class StudyDeadline(BaseCallback):
    """Stop training at the first epoch end at or after ``deadline`` (``time.time()`` seconds,
    so worker processes share it), or after the run's share of the time left when ``waiting()``
    (the number of queued trials still to run) is above zero at its start."""

    def __init__(self, deadline: float, waiting: Callable[[], int] | None = None) -> None:
        self.deadline, self.waiting = deadline, waiting
        self.stop_at, self.reason = deadline, STOP_REASON

    def on_fit_start(self, ctx: FitContext) -> None:
        queued = self.waiting() if self.waiting is not None else 0
        now = time.time()
        self.stop_at = now + (self.deadline - now) / (queued + 1) if queued > 0 else self.deadline
        self.reason = SHARE_REASON if queued > 0 else STOP_REASON
        ctx.stop_at = self.stop_at if ctx.stop_at is None else min(ctx.stop_at, self.stop_at)

    def on_epoch_end(self, ctx: FitContext, report: EpochReport) -> None:
        if time.time() >= min(self.stop_at, self.deadline):
            raise StopTraining(self.reason if time.time() < self.deadline else STOP_REASON)

    def __reduce__(self) -> tuple[Any, ...]:  # picklable for worker processes (without the queue's count)
        return (StudyDeadline, (self.deadline,))


def remaining(deadline: float | None) -> float | None:
    """Seconds left before ``deadline`` (None: no deadline); never below a millisecond, so
    Optuna's ``timeout`` stays valid and starts no further trial."""
    return None if deadline is None else max(1e-3, deadline - time.time())
