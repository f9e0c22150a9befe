"""Tracking: report runs and studies to MLflow, Weights & Biases and TensorBoard.

Each integration is imported only when enabled (``TrackingConfig``); with tracking off, importing
this package loads none of them.  See :mod:`tunelab.track.session` for the one-call wiring.
"""

from __future__ import annotations

from tunelab.config.tracking import TrackingConfig, WandbConfig
from tunelab.track.base import FAILED, FINISHED, PRUNED, TrackedRun, Tracker, TrackerCallback, abort_on_error, flatten
from tunelab.track.session import StudyTracking, make_trackers, run_tracking, study_tracking, tracking_callbacks
from tunelab.track.summary import StudySummary, TrialRow, summarize_study

__all__ = [
    "FAILED",
    "FINISHED",
    "PRUNED",
    "StudySummary",
    "StudyTracking",
    "TrackedRun",
    "Tracker",
    "TrackerCallback",
    "TrackingConfig",
    "TrialRow",
    "WandbConfig",
    "abort_on_error",
    "flatten",
    "make_trackers",
    "run_tracking",
    "study_tracking",
    "summarize_study",
    "tracking_callbacks",
]
