"""One trial's bookkeeping inside the training loop, the same for a solo run and a pack member.

A :class:`Member` owns what a trial records each epoch: divergence, the monitored metric, early
stopping, its history, its run directory and its callbacks.  Everything that ends a member is
recorded here as a ``stop_reason`` (and, for a failure, the exception): a solo ``fit`` re-raises
that exception, a pack hands it to the caller in ``result.extra["exception"]`` — one rule, two
endings.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from tunelab.config import ExperimentConfig, save_config
from tunelab.data.base import DataMeta
from tunelab.errors import UserError
from tunelab.models import count_parameters
from tunelab.results.attrs import STOP
from tunelab.results.run import RunWriter
from tunelab.train.callbacks import Callback, Diverged, EarlyStopper, EpochReport, FitContext, StopTraining
from tunelab.train.losses import build_loss
from tunelab.train.result import RunResult, final_metrics, monitor_mode

__all__ = ["PACK_FLUSH_SECONDS", "Member", "is_pruned"]

#: A pack's members buffer their metrics.jsonl lines and append them about this often.
PACK_FLUSH_SECONDS = 1.0


def is_pruned(exc: BaseException) -> bool:
    """Whether ``exc`` is Optuna's ``TrialPruned``.  train/ does not import Optuna: if nothing has
    imported it, no callback can have raised its exception."""
    optuna = sys.modules.get("optuna")
    return optuna is not None and isinstance(exc, optuna.TrialPruned)


@dataclass
class Member:
    """A trial in the loop: its config, callbacks, early stopping, history and run directory."""

    index: int
    cfg: ExperimentConfig
    callbacks: Sequence[Callback]
    ctx: FitContext
    stopper: EarlyStopper
    writer: RunWriter | None
    history: list[EpochReport] = field(default_factory=list)
    best_epoch: int = 0
    stop_reason: str | None = None
    exception: BaseException | None = None
    seconds: float = 0.0
    started: float = field(default_factory=time.time)  # clock time, for the deadline's anneal

    @classmethod
    def start(
        cls,
        index: int,
        cfg: ExperimentConfig,
        callbacks: Sequence[Callback],
        run_dir: str | Path | None,
        model: nn.Module,
        meta: DataMeta,
        info: dict[str, Any],
        flush_seconds: float = 0.0,
    ) -> Member:
        """Member ``index``, its run directory started and ``on_fit_start`` called."""
        writer = RunWriter(run_dir, flush_seconds=flush_seconds) if run_dir is not None else None
        if writer:
            writer.start(save_config(cfg))
        where = Path(run_dir) if run_dir is not None else None
        ctx = FitContext(config=cfg, meta=meta, model=model, n_params=count_parameters(model), run_dir=where, info=info)
        es = cfg.train.early_stopping
        stopper = EarlyStopper(monitor_mode(es.monitor, es.mode), es.patience, es.min_delta)
        for cb in callbacks:
            cb.on_fit_start(ctx)
        return cls(index, cfg, callbacks, ctx, stopper, writer)

    def end_epoch(self, epoch: int, metrics: dict[str, float]) -> bool:
        """Record the epoch and run the callbacks; True if the monitored metric improved.  Sets
        ``stop_reason`` (and ``exception`` for a failure) when the member stops here."""
        for key, what in (("train_loss", "train loss"), ("val_loss", "validation loss")):
            if not math.isfinite(metrics.get(key, 0.0)):
                self.stop_reason, self.exception = "diverged", Diverged(epoch, what)
                return False
        monitor = self.cfg.train.early_stopping.monitor
        if monitor not in metrics:
            known = ", ".join(k for k in metrics if k.startswith(("val_", "train_")))
            raise UserError(
                f"train.early_stopping.monitor: '{monitor}' is not a metric of this run; use one of {known}"
            )
        improved = self.stopper.update(metrics[monitor])
        if improved:
            self.best_epoch = epoch
        report = EpochReport(epoch=epoch, metrics=metrics, improved=improved, member=self.index)
        self.history.append(report)
        if self.writer:
            self.writer.epoch({"epoch": epoch, **metrics})
        try:
            for cb in self.callbacks:
                cb.on_epoch_end(self.ctx, report)
        except StopTraining as exc:
            self.stop_reason = str(exc) or "stopped by callback"
        except Exception as exc:  # noqa: BLE001  (a pruned member stops alone; the caller re-raises it)
            self.stop_reason = "pruned" if is_pruned(exc) else f"error: {type(exc).__name__}"
            self.exception = exc
        if self.stop_reason is None and self.stopper.stop:
            self.stop_reason = STOP.EARLY
        if self.stop_reason is None and epoch >= self.cfg.train.max_epochs:
            self.stop_reason = "max_epochs"
        return improved

    def steps_left(self, epoch_seconds: float, steps_per_epoch: int) -> int | None:
        """Optimizer steps until a known stop (``ctx.stop_at``) ends this member, once it is within
        the last ``train.deadline_anneal`` of the member's time (None before, or with no stop
        known): the schedule anneals the learning rate to zero over them.  The epoch running at
        the stop is cut there (``tunelab.train.loop``); steps are assumed to take as long as in
        the last epoch, its evaluation included (so the estimate errs short, never past the stop)."""
        stop_at, share = self.ctx.stop_at, self.cfg.train.deadline_anneal
        if stop_at is None or share <= 0 or self.stop_reason is not None:
            return None
        left = stop_at - time.time()
        if left > share * (stop_at - self.started):
            return None
        return max(1, round(left / max(epoch_seconds, 1e-9) * steps_per_epoch))

    def keep(self, best_state: dict[str, Tensor]) -> nn.Module:
        """The member has stopped: its own single model takes its best weights; returns it."""
        self.ctx.model.load_state_dict(best_state)
        return self.ctx.model

    def result(self, val: Any, test: Any, train_y: Tensor, predicted: tuple[Tensor, Tensor] | None = None) -> RunResult:
        """The member's ``RunResult``: its own single model (with the weights :meth:`keep` gave it),
        the final metrics (of ``predicted``, its val and test outputs, when they were computed
        already), its run directory finished (the checkpoint written once) and ``on_fit_end``
        called.  A failed member keeps its best epoch's metrics and gets no checkpoint."""
        model, cfg = self.ctx.model, self.cfg
        failed = self.exception is not None
        temperature = 1.0
        outputs: dict[str, Tensor] = {}  # classification: kept in the checkpoint for the study's ensemble
        if failed:
            metrics = dict(self.history[self.best_epoch - 1].metrics) if self.best_epoch else {}
        else:
            loss_fn = build_loss(cfg.loss, self.ctx.meta, train_y.cpu()).to(val.x.device)
            metrics = final_metrics(
                model,
                val,
                test,
                loss_fn,
                self.history,
                self.best_epoch,
                cfg.train.amp,
                cfg.loss.temperature_scaling,
                outputs,
                predicted,
            )
            temperature = metrics.pop("temperature", 1.0)
        result = RunResult(
            config=cfg,
            model=model,
            history=self.history,
            best_epoch=self.best_epoch,
            epochs=len(self.history),
            n_params=self.ctx.n_params,
            seconds=self.seconds,
            metrics=metrics,
            stop_reason=self.stop_reason or ("" if failed else "max_epochs"),
            temperature=temperature,
            extra=dict(self.ctx.info) | ({"exception": self.exception} if failed else {}),
        )
        if self.writer:
            self.writer.flush()  # before the trial is told: a finished trial's log is complete
        if not failed:
            if self.writer:
                self.writer.finish(model.state_dict(), save_config(cfg), result.summary(), outputs)
            for cb in self.callbacks:
                cb.on_fit_end(self.ctx, result)
        return result
