"""Hyperparameter search: study files, search spaces, Optuna studies, phases and workers.

``tune(load_study_config("study.yaml"))`` runs a study; see :mod:`tunelab.config.study` for the
study file and :mod:`tunelab.tune.runner` for what a run does.
"""

from __future__ import annotations

from tunelab.config import ParamSpec, StudyConfig, load_study_config, study_from_mapping
from tunelab.tune.runner import LogReporter, Reporter, TuneOptions, TuneResult, TuneStart, auto_tune_all, tune
from tunelab.tune.space import SearchSpace, build_space

__all__ = [
    "LogReporter",
    "ParamSpec",
    "Reporter",
    "SearchSpace",
    "StudyConfig",
    "TuneOptions",
    "TuneResult",
    "TuneStart",
    "auto_tune_all",
    "build_space",
    "load_study_config",
    "study_from_mapping",
    "tune",
]
