"""tunelab: find the best model and hyperparameters for sequence data, fast, and show why."""

from __future__ import annotations

from tunelab import models as _models  # noqa: F401  (fills the model registry)
from tunelab.config import ExperimentConfig, load_config
from tunelab.errors import UserError
from tunelab.registry import DATASETS, MODELS

__all__ = ["ExperimentConfig", "UserError", "load_config", "register_dataset", "register_model"]
__version__ = "0.1.0"

register_model = MODELS.register
register_dataset = DATASETS.register
