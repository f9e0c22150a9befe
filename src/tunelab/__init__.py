"""tunelab: find the best model and hyperparameters for sequence data, fast, and show why.

The public API (the CLI calls these)::

    import tunelab

    run = tunelab.train("run.yaml", train__lr=3e-4)          # one model; a RunResult
    found = tunelab.tune("study.yaml")                       # a study; a TuneResult
    report = tunelab.analyze("runs/" + found.study_name)     # what the study taught
    sets = tunelab.run_experiment_set("experiments.yaml")    # experiments x seeds, compared

Extend it with ``@tunelab.register_model`` / ``@tunelab.register_dataset`` (or ``--plugin``).
"""

from __future__ import annotations

# The subpackages named like API functions (tunelab.train, tunelab.tune) are imported first: the
# functions defined below then stay the package's attributes (a submodule is bound only on its
# first import).
import tunelab.train as _train_package  # noqa: F401
import tunelab.tune as _tune_package  # noqa: F401
from tunelab import models as _models  # noqa: F401  (fills the model registry)
from tunelab.api import analyze, auto_tune_all, train, tune
from tunelab.config import ExperimentConfig, StudyConfig, load_config, load_study_config
from tunelab.errors import UserError
from tunelab.experiments import compare_sources, load_experiment_set, run_experiment_set
from tunelab.registry import DATASETS, MODELS

__all__ = [
    "ExperimentConfig",
    "StudyConfig",
    "UserError",
    "analyze",
    "auto_tune_all",
    "compare_sources",
    "load_config",
    "load_experiment_set",
    "load_study_config",
    "register_dataset",
    "register_model",
    "run_experiment_set",
    "train",
    "tune",
]
__version__ = "0.1.0"

register_model = MODELS.register
register_dataset = DATASETS.register
