"""The tracker contract, and the callback that feeds a tracker from the training loop.

A :class:`Tracker` is one destination (MLflow, W&B, TensorBoard).  It may hold one *study* (a
parent run: MLflow's parent run, W&B's group, a TensorBoard folder) and opens any number of
:class:`TrackedRun` handles, one per training run.  Handles, rather than a "current run" inside
the tracker, let trials of one study run in parallel threads without stepping on each other.

:class:`TrackerCallback` is how training reaches a tracker: the trainer knows only callbacks.
"""

from __future__ import annotations

import importlib
import logging
import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from tunelab.errors import UserError
from tunelab.train.callbacks import BaseCallback, EpochReport, FitContext

if TYPE_CHECKING:
    from tunelab.track.summary import StudySummary

__all__ = [
    "FAILED",
    "FINISHED",
    "PRUNED",
    "TrackedRun",
    "Tracker",
    "TrackerCallback",
    "abort_on_error",
    "flatten",
    "require",
]

log = logging.getLogger(__name__)

# How a run ended.  A pruned trial is a normal outcome, not a failure.
FINISHED, PRUNED, FAILED = "FINISHED", "PRUNED", "FAILED"


@runtime_checkable
class TrackedRun(Protocol):
    """One training run inside a tracker."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Record scalar metrics at ``step`` (the epoch for training runs)."""

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Attach facts about the run (state, epochs, best_epoch, model, ...)."""

    def log_artifact(self, path: Path) -> None:
        """Attach a file (a config, a checkpoint); trackers without files ignore it."""

    def end(self, status: str = FINISHED) -> None:
        """Close the run; ``status`` is FINISHED, PRUNED or FAILED.  Calling it twice is harmless."""


@runtime_checkable
class Tracker(Protocol):
    """A tracking destination.  Without ``start_study`` its runs stand alone (``tunelab train``)."""

    name: str

    def start_study(self, name: str, config: Mapping[str, Any], tags: Mapping[str, Any]) -> None:
        """Open the study: runs started with ``nested=True`` belong to it."""

    def start_run(
        self, name: str, params: Mapping[str, Any], tags: Mapping[str, Any], nested: bool = False
    ) -> TrackedRun:
        """Open a run with its (flat, dotted) parameters."""

    def end_study(self, summary: StudySummary | None, artifacts: Sequence[Path], status: str = FINISHED) -> None:
        """Close the study, recording its summary (history, importances) and files (best model, report)."""


def require(module: str, package: str, extra: str, what: str) -> ModuleType:
    """Import an optional integration, or raise a UserError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"{what} needs the {package} package: pip install 'tunelab[{extra}]'") from None


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"hidden_dim": 8}}`` -> ``{"model.hidden_dim": 8}``; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat |= flatten(value, f"{path}.")
        else:
            flat[path] = value
    return flat


def _finite(metrics: Mapping[str, Any]) -> dict[str, float]:
    # Trackers reject or mangle NaN/inf and non-numbers; drop them rather than fail a run.
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


def _outcome(exc: BaseException) -> tuple[str, str]:
    """Status and reason for a run that ended by an exception."""
    optuna = sys.modules.get("optuna")  # only a tuner raises TrialPruned, and it has imported optuna
    if optuna is not None and isinstance(exc, optuna.TrialPruned):
        return PRUNED, str(exc) or "pruned"
    from tunelab.train.callbacks import Diverged

    if isinstance(exc, Diverged):
        return PRUNED, str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return FAILED, "interrupted"
    return FAILED, f"{type(exc).__name__}: {exc}"[:500]


class TrackerCallback(BaseCallback):
    """Report one fit to one tracker.

    * ``on_fit_start``: opens a run with the flattened config (dotted keys), ``n_params`` and
      ``extra_params`` (e.g. a trial's sampled values) as parameters, tagged with the model family.
    * ``on_epoch_end``: logs every scalar of the epoch report at ``step=epoch`` (losses, val metrics,
      ``lr/<group>``, ``grad_norm`` before clipping, ``clip_frac``, ``extra/<name>`` model scalars).
    * ``on_fit_end``: logs the final metrics (``test_*``; keys that also exist per epoch get a
      ``best_`` prefix, as they are the values at the best epoch), tags state/epochs/best_epoch/
      stop_reason, attaches the run's files and ends the run.
    * :meth:`abort`: ends the run after an exception (pruned, diverged, failed); see
      :func:`abort_on_error`.

    Put tracker callbacks *before* a pruning callback, so the epoch that triggers pruning is logged.
    A tracker that fails mid-run (a server gone away, a rejected key) is logged as a warning and
    dropped for the rest of the run: tracking never costs a training run.
    """

    def __init__(
        self,
        tracker: Tracker,
        run_name: str | None = None,
        *,
        tags: Mapping[str, Any] | None = None,
        extra_params: Mapping[str, Any] | None = None,
        nested: bool = False,
        artifacts: Sequence[str] = ("config.json", "summary.json", "best_model.pt"),
        member: int | None = None,
    ) -> None:
        self.tracker = tracker
        self.run_name = run_name
        self.tags = dict(tags or {})
        self.extra_params = dict(extra_params or {})
        self.nested = nested
        self.artifacts = tuple(artifacts)  # file names inside the run directory
        self.member = member  # inside a trial pack, only this member's reports
        self.run: TrackedRun | None = None
        self.last_epoch = 0
        self._epoch_keys: set[str] = set()

    def on_fit_start(self, ctx: FitContext) -> None:
        from tunelab.config import save_config

        name = self.run_name or (ctx.run_dir.name if ctx.run_dir else ctx.config.model.name)
        params = flatten(save_config(ctx.config)) | {"n_params": ctx.n_params} | self.extra_params
        tags = {"model": ctx.config.model.name, "state": "RUNNING"} | self.tags
        self.last_epoch = 0
        with self._guard("starting a run"):
            self.run = self.tracker.start_run(name, params, tags, nested=self.nested)

    def on_epoch_end(self, ctx: FitContext, report: EpochReport) -> None:
        if self.run is None or (self.member is not None and report.member != self.member):
            return
        metrics = _finite(report.metrics)
        self._epoch_keys |= metrics.keys()
        self.last_epoch = report.epoch
        with self._guard(f"logging epoch {report.epoch}"):
            self.run.log_metrics(metrics, step=report.epoch)

    def on_fit_end(self, ctx: FitContext, result: Any) -> None:
        if self.run is None:
            return
        final = {(f"best_{k}" if k in self._epoch_keys else k): v for k, v in _finite(result.metrics).items()}
        final["seconds_total"] = float(result.seconds)
        tags = {
            "state": "COMPLETE",
            "epochs": result.epochs,
            "best_epoch": result.best_epoch,
            "stop_reason": result.stop_reason,
        }
        with self._guard("finishing the run"):
            self.run.log_metrics(final, step=max(result.epochs, self.last_epoch))
            self.run.set_tags(tags)
            if ctx.run_dir is not None:
                for name in self.artifacts:
                    if (ctx.run_dir / name).is_file():
                        self.run.log_artifact(ctx.run_dir / name)
            self._end(FINISHED)

    def abort(self, exc: BaseException) -> None:
        """End the run after ``exc`` stopped the fit: PRUNED (pruned, diverged) or FAILED."""
        if self.run is None:
            return
        status, reason = _outcome(exc)
        tags: dict[str, Any] = {
            "state": "PRUNED" if status == PRUNED else "FAIL",
            "epochs": self.last_epoch,
            "reason": reason,
        }
        if status == PRUNED:
            tags["pruned_epoch"] = self.last_epoch
        try:
            self.run.set_tags(tags)
        finally:
            self._end(status)

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Turn a tracker's failure into a warning, and stop reporting this run to it."""
        try:
            yield
        except UserError:
            raise
        except Exception as exc:
            log.warning(
                "%s tracking failed while %s (%s: %s); the rest of this run is not reported to it",
                self.tracker.name,
                what,
                type(exc).__name__,
                exc,
            )
            run, self.run = self.run, None
            if run is not None:
                with suppress(Exception):
                    run.end(FAILED)

    def _end(self, status: str) -> None:
        run, self.run = self.run, None
        if run is not None:
            run.end(status)


@contextmanager
def abort_on_error(callbacks: Sequence[Any]) -> Iterator[Sequence[Any]]:
    """Close the tracker runs of ``callbacks`` if the block raises (pruned, diverged, failed)::

    with abort_on_error(cbs):
        fit(cfg, callbacks=[*cbs, pruning_cb])
    """
    try:
        yield callbacks
    except BaseException as exc:
        for cb in callbacks:
            if isinstance(cb, TrackerCallback):
                try:
                    cb.abort(exc)
                except Exception:  # a tracker's failure must not hide the original error
                    log.exception("tracker %s failed to close its run", cb.tracker.name)
        raise
