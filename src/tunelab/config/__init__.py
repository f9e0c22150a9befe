"""The whole schema, typed and validated once: config goes in here and flows down as plain objects.

* :mod:`~tunelab.config.experiment`: one training run (``ExperimentConfig``);
* :mod:`~tunelab.config.study`: a study (``StudyConfig``, ``ParamSpec``, samplers, pruners);
* :mod:`~tunelab.config.tracking`: which trackers a run or study reports to;
* :mod:`~tunelab.config.loader`: the one loader of any accepted file;
* :mod:`~tunelab.config.overrides`: the one dotted-override parser;
* :mod:`~tunelab.config.errors`: the one validation-error formatter;
* :mod:`~tunelab.config.search`: the sampler and pruner registrations.

Nothing below this package parses user strings or reads the environment.
"""

from __future__ import annotations

from tunelab.config.base import ModelConfig, StrictModel, shape
from tunelab.config.errors import format_validation_error
from tunelab.config.experiment import (
    AugmentConfig,
    DataConfig,
    EarlyStoppingConfig,
    ExperimentConfig,
    LossConfig,
    NoiseConfig,
    TrainConfig,
    dotted_keys,
    pack_key,
    save_config,
    validate_config,
)
from tunelab.config.loader import load_any, load_config, load_mapping, load_study_config, study_from_mapping
from tunelab.config.overrides import apply_overrides, parse_value, split_override
from tunelab.config.study import ParamSpec, PrunerConfig, SamplerConfig, StudyConfig
from tunelab.config.tracking import TrackingConfig, WandbConfig

__all__ = [
    "AugmentConfig",
    "DataConfig",
    "EarlyStoppingConfig",
    "ExperimentConfig",
    "LossConfig",
    "ModelConfig",
    "NoiseConfig",
    "ParamSpec",
    "PrunerConfig",
    "SamplerConfig",
    "StrictModel",
    "StudyConfig",
    "TrackingConfig",
    "TrainConfig",
    "WandbConfig",
    "apply_overrides",
    "dotted_keys",
    "format_validation_error",
    "load_any",
    "load_config",
    "load_mapping",
    "load_study_config",
    "pack_key",
    "parse_value",
    "save_config",
    "shape",
    "split_override",
    "study_from_mapping",
    "validate_config",
]
