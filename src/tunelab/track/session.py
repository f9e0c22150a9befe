"""One-call wiring of trackers into `train` and `tune`.

``tunelab train``::

    with run_tracking(tracking, run_name) as cbs:
        fit(cfg, callbacks=[*cbs, ...], run_dir=run_dir)

``tunelab tune``::

    with study_tracking(tracking, study_name, study_config_dict) as st:
        ...  # in the objective:
            with st.trial(f"trial-{trial.number}", tags={"trial": trial.number}, params=trial.params) as cbs:
                fit(cfg, callbacks=[*cbs, pruning_callback], run_dir=...)
        st.finish(summarize_study(study), [save_dir / "best_model.pt", save_dir / "report.html"])

With tracking off, every helper returns empty lists and imports nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tunelab.config.tracking import TrackingConfig
from tunelab.track.base import FAILED, FINISHED, Tracker, TrackerCallback, abort_on_error
from tunelab.track.summary import StudySummary

__all__ = ["StudyTracking", "make_trackers", "run_tracking", "study_tracking", "tracking_callbacks"]

log = logging.getLogger(__name__)

# Files of a trial's run directory worth attaching: the config re-runs it; checkpoints stay local.
TRIAL_ARTIFACTS = ("config.json",)


def make_trackers(cfg: TrackingConfig) -> list[Tracker]:
    """The trackers ``cfg`` enables, each imported only now; a missing package is a UserError."""
    trackers: list[Tracker] = []
    if cfg.mlflow is not None:
        from tunelab.track.mlflow import MlflowTracker

        trackers.append(MlflowTracker(cfg))
    if cfg.wandb.enabled and cfg.wandb.mode != "disabled":
        from tunelab.track.wandb import WandbTracker

        trackers.append(WandbTracker(cfg))
    if cfg.tensorboard:
        from tunelab.track.tensorboard import TensorBoardTracker

        trackers.append(TensorBoardTracker(cfg))
    return trackers


def tracking_callbacks(
    trackers: Sequence[Tracker] | TrackingConfig, run_name: str | None = None, *, tags: Mapping[str, Any] | None = None
) -> list[TrackerCallback]:
    """One standalone (not nested) :class:`TrackerCallback` per tracker, for a single `train` run.
    Wrap the fit in :func:`abort_on_error` (or use :func:`run_tracking`) so a crash closes the runs."""
    if isinstance(trackers, TrackingConfig):
        trackers = make_trackers(trackers)
    return [TrackerCallback(t, run_name, tags=tags) for t in trackers]


@contextmanager
def run_tracking(
    cfg: TrackingConfig, run_name: str | None = None, *, tags: Mapping[str, Any] | None = None
) -> Iterator[list[TrackerCallback]]:
    """Callbacks reporting one `train` run to every enabled tracker; runs are closed as FAILED if the
    block raises."""
    cbs = tracking_callbacks(cfg, run_name, tags=tags)
    with abort_on_error(cbs):
        yield cbs


class StudyTracking:
    """A study open in every enabled tracker: hands out trial callbacks, closes with a summary."""

    def __init__(self, trackers: Sequence[Tracker], name: str) -> None:
        self.trackers = list(trackers)
        self.name = name
        self.summary: StudySummary | None = None
        self.artifacts: list[Path] = []
        self._lock = threading.Lock()  # trials may start from several threads

    @property
    def enabled(self) -> bool:
        return bool(self.trackers)

    def trial_callbacks(
        self, run_name: str, *, tags: Mapping[str, Any] | None = None, params: Mapping[str, Any] | None = None
    ) -> list[TrackerCallback]:
        """Nested-run callbacks for one trial (``params``: e.g. the trial's sampled values)."""
        tags = {"study": self.name, **(tags or {})}
        return [
            TrackerCallback(t, run_name, tags=tags, extra_params=params, nested=True, artifacts=TRIAL_ARTIFACTS)
            for t in self.trackers
        ]

    @contextmanager
    def trial(
        self, run_name: str, *, tags: Mapping[str, Any] | None = None, params: Mapping[str, Any] | None = None
    ) -> Iterator[list[TrackerCallback]]:
        """:meth:`trial_callbacks` whose runs end as PRUNED/FAILED if the block raises."""
        cbs = self.trial_callbacks(run_name, tags=tags, params=params)
        with abort_on_error(cbs):
            yield cbs

    def finish(self, summary: StudySummary | None = None, artifacts: Sequence[Path | str] = ()) -> None:
        """Set what the study's parent run records when the context closes (best model, report.html)."""
        with self._lock:
            self.summary = summary
            self.artifacts = [Path(p) for p in artifacts]


@contextmanager
def study_tracking(
    cfg: TrackingConfig | Sequence[Tracker],
    name: str,
    config: Mapping[str, Any] | None = None,
    *,
    tags: Mapping[str, Any] | None = None,
) -> Iterator[StudyTracking]:
    """Open study ``name`` (its resolved config logged as parameters) in every enabled tracker; on
    exit, each records the summary and artifacts given to :meth:`StudyTracking.finish` and closes."""
    trackers = make_trackers(cfg) if isinstance(cfg, TrackingConfig) else list(cfg)
    for t in trackers:
        t.start_study(name, config or {}, tags or {})
    st = StudyTracking(trackers, name)
    status = FINISHED
    try:
        yield st
    except BaseException:
        status = FAILED
        raise
    finally:
        for t in trackers:
            try:
                t.end_study(st.summary, st.artifacts, status)
            except Exception:
                if status == FINISHED:
                    raise
                log.exception("tracker %s failed to close study %s", t.name, name)
