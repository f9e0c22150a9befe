"""Hyperparameter search: search spaces, Optuna studies, phases and workers.

``tune(load_study_config("study.yaml"))`` runs a study (the study file's schema is
:mod:`tunelab.config.study`).  By concept:

* ``space/``: a study's space → Optuna suggestions → a concrete config; phases;
* ``prepare.py`` (with ``checks.py``, ``naming.py``, ``study.py``): everything before the first trial;
* ``execution/``: the objective, packs, worker processes and hosts, owners, heartbeats, cluster jobs;
* ``reporting/``: the reporter protocol, the console, summary rows, reads of a running study;
* ``runner.py``: :func:`tune` = prepare, run the trials, analyse; :func:`auto_tune_all`.
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
