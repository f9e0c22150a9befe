"""A trial is an ExperimentConfig plus callbacks.

:class:`Objective` samples a new config from the search space, trains it with the ordinary
``fit`` (the same code path as ``tunelab train``) and returns the objective metric(s).  Around
that it turns every way a trial can end into a recorded outcome:

* the pruner says stop → PRUNED, reason "pruned at epoch N";
* NaN/inf loss (``Diverged``) → PRUNED, reason "diverged at epoch N";
* out of memory → FAIL, reason "out of memory", memory freed, the study goes on;
* an exception in user (plugin) code → FAIL with its traceback saved, the study goes on;
* a config the space cannot build → FAIL, reason "invalid config: ...";
* a :class:`~tunelab.errors.UserError` (bad data path, unknown metric) stops the study.

Every trial records the :class:`~tunelab.results.attrs.TRIAL` attributes.
"""

from __future__ import annotations

import gc
import logging
import math
import time
import traceback
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import optuna

from tunelab.budget import data_size, resolve_defaults
from tunelab.config import ExperimentConfig, save_config
from tunelab.errors import UserError
from tunelab.results.artifacts import TrialUploads
from tunelab.results.attrs import TRIAL
from tunelab.results.study import StudyWriter
from tunelab.train.callbacks import BaseCallback, Callback, Diverged, EpochReport, FitContext
from tunelab.tune.execution.owners import claim
from tunelab.tune.reporting.reads import SharedReads
from tunelab.tune.space import InvalidSample, SearchSpace

if TYPE_CHECKING:
    from tunelab.train.trainer import RunResult

__all__ = ["DataCache", "Objective", "TrialCallback", "TrialFailed", "TrialRun", "is_out_of_memory", "objective_values"]

log = logging.getLogger(__name__)

_RUN_FACTS = ("n_params", "seconds", "epochs")


@dataclass
class TrialRun:
    """A trial that has begun: its config, sampled parameters, run directory and epoch follower."""

    cfg: ExperimentConfig
    params: dict[str, Any]
    run_dir: Path
    follow: TrialCallback
    t0: float


class TrialFailed(Exception):
    """Ends a trial as FAIL with its reason recorded; the study continues."""


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the RuntimeError that MPS and older CUDA paths raise."""
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _free_memory() -> None:
    """Give a finished trial's device memory back before the next trial allocates.

    Only where a device cache holds it: a full ``gc.collect()`` costs ~0.3 s in a process that has
    imported torch and optuna (a third of a tiny trial's time on CPU), and on CPU the next automatic
    collection frees the same objects."""
    import torch

    if torch.cuda.is_initialized():
        gc.collect()
        torch.cuda.empty_cache()


class DataCache:
    """Prepared splits, shared by trials whose data settings match.

    Augmentation and bucketing act inside ``fit``, so trials that differ only in those reuse the
    same prepared tensors.  A fixed ``data`` (tests, the Python API) is returned as is.
    """

    def __init__(self, data: Any | None = None, max_items: int = 2) -> None:
        self.fixed = data
        self.max_items = max_items
        self._items: dict[str, Any] = {}

    def get(self, cfg: ExperimentConfig) -> Any:
        if self.fixed is not None:
            return self.fixed
        from tunelab.data import data_key, prepare

        key = data_key(cfg.data, cfg.seed)
        if key not in self._items:
            if len(self._items) >= self.max_items:
                self._items.pop(next(iter(self._items)))
            self._items[key] = prepare(cfg.data, cfg.seed)
        return self._items[key]


class TrialCallback(BaseCallback):
    """Follows a trial's epochs: reports the objective metric to Optuna and asks the pruner.

    It keeps what the trial must record even when training ends by an exception: the epochs run,
    the best epoch and its losses, the parameter count.
    """

    def __init__(self, trial: optuna.Trial, metric: str | None, *, prune: bool = True) -> None:
        self.trial = trial
        self.metric = metric  # None: nothing to report per epoch (several objectives, or not an epoch metric)
        self.prune = prune
        self.epochs = 0
        self.best: EpochReport | None = None
        self.n_params: int | None = None
        self.pruned_epoch: int | None = None
        self.pruning: SharedReads | None = None  # the pruner's read of the study (a pack's members share one)

    def on_fit_start(self, ctx: FitContext) -> None:
        self.n_params = ctx.n_params
        self.trial.set_user_attr(TRIAL.N_PARAMS, ctx.n_params)

    def on_epoch_end(self, ctx: FitContext, report: EpochReport) -> None:
        self.epochs = report.epoch
        if report.improved or self.best is None:
            self.best = report
        if self.metric is None or self.metric not in report.metrics:
            return
        value = report.metrics[self.metric]
        if not math.isfinite(value):
            return
        self.trial.report(value, step=report.epoch)
        if self.prune and self._should_prune(value, report.epoch):
            self.pruned_epoch = report.epoch
            raise optuna.TrialPruned(f"pruned at epoch {report.epoch}")

    def _should_prune(self, value: float, step: int) -> bool:
        if self.pruning is None:
            self.pruning = SharedReads(self.trial.study)
        return self.pruning.should_prune(self.trial, step, value)

    def record_partial(self) -> None:
        """Epoch facts of a trial that did not finish (pruned, diverged, failed)."""
        t = self.trial
        t.set_user_attr(TRIAL.EPOCHS, self.epochs)
        if self.best is not None:
            m = self.best.metrics
            t.set_user_attr(TRIAL.BEST_EPOCH, self.best.epoch)
            train_loss, val_loss = m.get("train_loss"), m.get("val_loss")
            if train_loss is not None and math.isfinite(train_loss):
                t.set_user_attr(TRIAL.TRAIN_LOSS, train_loss)
            if val_loss is not None and math.isfinite(val_loss):
                t.set_user_attr(TRIAL.VAL_LOSS, val_loss)
                if train_loss is not None and math.isfinite(train_loss):
                    t.set_user_attr(TRIAL.GAP, val_loss - train_loss)
            t.set_user_attr(
                TRIAL.METRICS, {k: v for k, v in m.items() if k.startswith(("val_", "train_")) and math.isfinite(v)}
            )


def objective_values(result: RunResult, objectives: Sequence[str]) -> list[float]:
    """The objective metric(s) of a finished run (``n_params``, ``seconds``, ``epochs`` or a metric)."""
    out = []
    for name in objectives:
        if name in _RUN_FACTS:
            out.append(float(getattr(result, name)))
        elif name in result.metrics:
            out.append(float(result.metrics[name]))
        else:
            have = ", ".join(sorted(result.metrics))
            raise UserError(f"objective '{name}' is not a metric of this run; it produced: {have}")
    return out


class Objective:
    """``Objective(space, objectives, study_dir)(trial)`` trains one sampled config.

    Args:
        space: what to sample.
        objectives: metric names, one per study direction.
        study_dir: the study directory; each trial writes ``trials/<number>-<timestamp>/``.
        data: prepared splits to use for every trial (default: prepared from each config, cached).
        callbacks: extra fit callbacks for every trial.
        prune: report per epoch and let the pruner stop trials (single objective only).
        trial_context: ``fn(trial, params) -> context manager yielding extra callbacks`` (trackers,
            heartbeats); its exit sees the trial's exception, if any.
        artifacts: this host's path or URL of the study's artifact store (default: the study's own
            ``artifacts`` attribute); every trial that ends uploads its run files there.
    """

    def __init__(
        self,
        space: SearchSpace,
        objectives: Sequence[str],
        study_dir: str | Path,
        *,
        data: Any | None = None,
        callbacks: Sequence[Callback] = (),
        prune: bool = True,
        trial_context: Callable[[optuna.Trial, dict[str, Any]], AbstractContextManager[Sequence[Callback]]]
        | None = None,
        artifacts: str | None = None,
    ) -> None:
        self.space = space
        self.objectives = list(objectives)
        self.writer = StudyWriter(study_dir)
        self.data = data if isinstance(data, DataCache) else DataCache(data)
        self.callbacks = list(callbacks)
        self.prune = prune and len(self.objectives) == 1
        self.trial_context = trial_context
        self.uploads = TrialUploads(artifacts)
        self._run_dirs: dict[int, Path] = {}  # trial number → run directory, until the trial ends
        first = self.objectives[0]
        self.report_metric = first if len(self.objectives) == 1 and first.startswith(("val_", "train_")) else None

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        run = self.begin(trial)
        try:
            result = self._fit(trial, run)
        finally:
            trial.set_user_attr(TRIAL.SECONDS, time.perf_counter() - run.t0)
        return self.complete(trial, result)

    def begin(self, trial: optuna.Trial) -> TrialRun:
        """Claim the trial, sample its config and record what it will run (``TrialFailed`` if invalid)."""
        claim(trial)  # first: a resumed study can then tell this trial's process has died
        t0 = time.perf_counter()
        try:
            cfg, params = self.space.sample(trial)
            cfg, _ = resolve_defaults(cfg, data_size(self.data.get(cfg)))  # unset batch/epochs/patience from the data
        except InvalidSample as exc:
            trial.set_user_attr(TRIAL.REASON, f"invalid config: {exc}")
            raise TrialFailed(f"invalid config: {exc}") from None
        run_dir = self.writer.trial_dir(trial.number)
        trial.set_user_attr(TRIAL.MODEL, cfg.model.name)
        trial.set_user_attr(TRIAL.CONFIG, save_config(cfg))
        trial.set_user_attr(TRIAL.RUN_DIR, run_dir.relative_to(self.writer.dir).as_posix())
        trial.set_user_attr(TRIAL.MAX_EPOCHS, cfg.train.max_epochs)
        follow = TrialCallback(trial, self.report_metric, prune=self.prune)
        self._run_dirs[trial.number] = run_dir
        return TrialRun(cfg, params, run_dir, follow, t0)

    def complete(self, trial: optuna.Trial, result: RunResult, free: bool = True) -> float | list[float]:
        """Record a finished run on its trial and return the objective value(s); ``free=False``
        leaves giving device memory back to the caller (a pack frees once for all its members)."""
        values = objective_values(result, self.objectives)
        self._record(trial, result)
        self.uploads(trial, self._run_dirs.pop(trial.number, None))
        del result
        if free:
            _free_memory()
        return values[0] if len(values) == 1 else values

    def context(self, trial: optuna.Trial, params: dict[str, Any]) -> AbstractContextManager[Sequence[Callback]]:
        """The per-trial context (heartbeat, tracker run); yields the trial's extra callbacks."""
        return self.trial_context(trial, params) if self.trial_context is not None else nullcontext(())

    def fit_callbacks(self, run: TrialRun, extra: Sequence[Callback]) -> list[Callback]:
        """A trial's fit callbacks, in order: trackers see each epoch before the pruner may end the
        trial, and the follower records it before user callbacks run."""
        return [*extra, run.follow, *self.callbacks]

    def train(self, trial: optuna.Trial, run: TrialRun) -> RunResult:
        """Train one trial's config alone: its data from the cache, inside the trial's context (the
        solo path of packs uses it too); exceptions propagate to the caller."""
        from tunelab.train import fit

        data = self.data.get(run.cfg)
        with self.context(trial, run.params) as extra:
            return fit(run.cfg, data=data, callbacks=self.fit_callbacks(run, extra), run_dir=run.run_dir)

    def _fit(self, trial: optuna.Trial, run: TrialRun) -> RunResult:
        try:
            return self.train(trial, run)
        except BaseException as exc:  # noqa: BLE001  (fail() re-raises it as the outcome Optuna records)
            self.fail(trial, run, exc)
            raise  # unreachable: fail() always raises

    def fail(self, trial: optuna.Trial, run: TrialRun, exc: BaseException) -> NoReturn:
        """Record how a trial ended early and raise what Optuna should record.

        Pruned → ``TrialPruned``; diverged → ``TrialPruned`` with its reason; out of memory or an
        error in user code → ``TrialFailed`` (the study goes on); a ``UserError`` or an interrupt
        propagates and stops the study.
        """
        follow = run.follow
        if isinstance(exc, Exception) and not isinstance(exc, UserError):  # an interrupted trial uploads nothing
            self.uploads(trial, self._run_dirs.pop(trial.number, run.run_dir))
        if isinstance(exc, optuna.TrialPruned):
            follow.record_partial()
            trial.set_user_attr(TRIAL.REASON, f"pruned at epoch {follow.pruned_epoch or follow.epochs}")
            trial.set_user_attr(TRIAL.PRUNED_EPOCH, follow.pruned_epoch or follow.epochs)
            raise exc
        if isinstance(exc, Diverged):
            follow.record_partial()
            trial.set_user_attr(TRIAL.REASON, f"diverged at epoch {exc.epoch}")
            trial.set_user_attr(TRIAL.PRUNED_EPOCH, exc.epoch)
            raise optuna.TrialPruned(f"diverged at epoch {exc.epoch}") from None
        if isinstance(exc, UserError):
            trial.set_user_attr(TRIAL.REASON, f"config error: {exc}")
            raise exc
        if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit (SIGTERM)
            trial.set_user_attr(TRIAL.REASON, "interrupted")
            raise exc
        if is_out_of_memory(exc):
            failure = "out of memory"
        else:
            text = "".join(traceback.format_exception(exc))
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            failure = f"error: {type(exc).__name__}: {first}".rstrip(": ")
            trial.set_user_attr(TRIAL.TRACEBACK, text[-20000:])
            self.writer.write_traceback(run.run_dir, text)
        exc.__traceback__ = None  # its frames (and their tensors) are released
        del exc
        _free_memory()
        follow.record_partial()
        trial.set_user_attr(TRIAL.REASON, failure)
        raise TrialFailed(failure)

    @staticmethod
    def _record(trial: optuna.Trial, result: RunResult) -> None:
        """The finished run's facts; ``n_params`` was recorded when the run started (by
        :class:`TrialCallback`), and each attribute is a storage write."""
        m = result.metrics
        trial.set_user_attr(TRIAL.EPOCHS, result.epochs)
        trial.set_user_attr(TRIAL.BEST_EPOCH, result.best_epoch)
        for key, name in ((TRIAL.TRAIN_LOSS, "train_loss"), (TRIAL.VAL_LOSS, "val_loss"), (TRIAL.GAP, "gap")):
            if name in m and math.isfinite(m[name]):
                trial.set_user_attr(key, m[name])
        trial.set_user_attr(
            TRIAL.METRICS, {k: v for k, v in m.items() if isinstance(v, float | int) and math.isfinite(v)}
        )
        trial.set_user_attr(TRIAL.STOP_REASON, result.stop_reason)
