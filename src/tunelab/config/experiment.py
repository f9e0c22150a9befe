"""The experiment schema: one training run, complete (data, model, train, loss), and its round trip.

Fields tagged ``shape`` decide tensor shapes (they form a trial pack's key); every other
field is a *value* parameter that may differ between members of one pack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SerializeAsAny, ValidationError, field_validator, model_validator

from tunelab.config.base import ModelConfig, StrictModel, shape
from tunelab.config.errors import format_validation_error
from tunelab.config.overrides import alias
from tunelab.errors import UserError
from tunelab.registry import MODELS, closest

__all__ = [
    "AugmentConfig",
    "DataConfig",
    "EarlyStoppingConfig",
    "ExperimentConfig",
    "LossConfig",
    "ModelConfig",
    "NoiseConfig",
    "StrictModel",
    "TrainConfig",
    "dotted_keys",
    "pack_key",
    "save_config",
    "shape",
    "validate_config",
]


# --------------------------------------------------------------------------- data


class AugmentConfig(StrictModel):
    """Train-split augmentations; each strength is a hyperparameter, 0 switches it off."""

    jitter: float = Field(0.0, ge=0, description="std of added Gaussian noise (normalised units)")
    scale: float = Field(0.0, ge=0, description="std of per-channel magnitude scaling around 1")
    time_warp: float = Field(0.0, ge=0, le=1, description="strength of smooth time warping")
    time_mask: float = Field(0.0, ge=0, le=1, description="fraction of valid steps zeroed (one span)")


class NoiseConfig(StrictModel):
    """Turn a dataset into a denoising task: input = signal + noise, target = clean signal."""

    kind: Literal["white", "pink", "brown", "impulse"] = "white"
    snr_db: float = Field(10.0, description="signal-to-noise ratio of the noisy input, in dB")


class DataConfig(StrictModel):
    """Which data, how it is split and prepared."""

    name: str = Field("japanese_vowels", description="built-in dataset (see `tunelab datasets`)")
    path: str | None = Field(
        None, description="user data: .ts/.npz/.csv/.parquet file or a folder of NAME_TRAIN.ts/NAME_TEST.ts"
    )
    options: dict[str, Any] = Field(default_factory=dict, description="keyword options of the dataset loader")
    classes: int | None = Field(None, ge=2, description="keep only the N most frequent classes")
    val_fraction: float = Field(0.2, gt=0, lt=1, description="stratified validation share of the train split")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="test share when the data has no official split")
    normalize: bool = Field(
        True, description="per-channel z-score with train-split statistics (inputs; regression and seq2seq targets too)"
    )
    bucket: bool = Field(False, description="group sequences of similar length into batches to cut padding")
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    noise: NoiseConfig | None = Field(None, description="make a denoising (seq2seq) task from the data")

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        """Stored absolute (against the working directory), so a saved config means the same file
        from any directory; ``tunelab evaluate --data-path`` points a copied study elsewhere."""
        return None if value is None else str(Path(value).expanduser().absolute())

    @model_validator(mode="after")
    def _name_of_path(self) -> DataConfig:
        """With a path, ``name`` is the file's name (not a built-in dataset left beside it)."""
        if self.path and "name" not in self.model_fields_set:
            self.name = Path(self.path).stem
        return self


# --------------------------------------------------------------------------- train


class EarlyStoppingConfig(StrictModel):
    """Stop when the monitored metric has not improved for ``patience`` epochs; restore best weights."""

    monitor: str = Field("val_loss", description="metric name, e.g. val_loss, val_f1, val_acc")
    mode: Literal["min", "max", "auto"] = Field("auto", description="auto: max for acc/f1/snr, min otherwise")
    patience: int | None = Field(15, ge=1, description="epochs without improvement; null disables")
    min_delta: float = Field(0.0, ge=0)


class TrainConfig(StrictModel):
    """Optimisation: optimizer, schedule, batching, clipping, stopping."""

    optimizer: Literal["adam", "adamw", "sgd"] = "adamw"
    lr: float = Field(3e-3, gt=0, description="learning rate of the output head (and of the body, times body_lr_scale)")
    body_lr_scale: float = Field(1.0, gt=0, description="body (core) lr = lr x this (seed 003's core_lr_scale)")
    weight_decay: float = Field(1e-4, ge=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    eps: float = Field(1e-8, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD only")
    nesterov: bool = Field(False, description="SGD only")
    schedule: Literal["none", "plateau", "cosine", "onecycle"] = "plateau"
    warmup_epochs: float = Field(0.0, ge=0, description="linear warmup before cosine")
    plateau_factor: float = Field(0.5, gt=0, lt=1)
    plateau_patience: int = Field(5, ge=0)
    min_lr: float = Field(1e-7, ge=0)
    deadline_anneal: float = Field(
        0.5,
        ge=0,
        le=1,
        description="when a time limit will stop the run (a study's timeout or time share), decay the "
        "learning rate linearly to 0 over this last fraction of its time; 0 disables",
    )
    batch_size: int = shape(32, "sequences per optimizer step (before accumulation)", ge=1)
    max_epochs: int = Field(60, ge=1)
    steps_per_epoch: int | None = Field(
        None, ge=1, description="fixed steps per epoch (sampling with replacement across epochs)"
    )
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step")
    clip_norm: float | None = Field(1.0, gt=0, description="max gradient norm; null disables")
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    amp: bool = Field(True, description="bf16 autocast on CUDA (ignored on CPU)")


class LossConfig(StrictModel):
    """Training loss; 'auto' is cross-entropy for classification, MSE for regression."""

    name: Literal["auto", "cross_entropy", "focal", "mse", "l1"] = "auto"
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    class_weights: bool = Field(False, description="weight classes by 1/sqrt(train frequency)")
    focal_gamma: float = Field(2.0, ge=0, description="focal loss only; 0 equals cross-entropy")
    confidence_penalty: float = Field(0.0, ge=0, description="weight of the entropy regulariser (Pereyra et al.)")
    temperature_scaling: bool = Field(True, description="fit a temperature on validation after training")


# --------------------------------------------------------------------------- experiment


def _default_model() -> ModelConfig:
    return MODELS.get("gru").config()  # type: ignore[misc]


class ExperimentConfig(StrictModel):
    """One training run, complete: what `tunelab train` runs and what every trial saves."""

    data: DataConfig = Field(default_factory=DataConfig)
    model: SerializeAsAny[ModelConfig] = Field(default_factory=_default_model)
    train: TrainConfig = Field(default_factory=TrainConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    seed: int = Field(0, description="drives every random choice")
    device: str = Field("auto", description="auto (cuda > mps > cpu), cpu, cuda, cuda:N, mps")

    @field_validator("model", mode="before")
    @classmethod
    def _family(cls, value: Any) -> Any:
        """Dispatch the model section to its family's config class by ``name``."""
        if isinstance(value, ModelConfig) and type(value) is not ModelConfig:
            return value
        if isinstance(value, BaseModel):
            value = value.model_dump()
        if not isinstance(value, dict):
            raise ValueError("must be a mapping with a 'name' key")
        name = value.get("name", "gru")
        if name not in MODELS and isinstance(name, str):  # a seed alias (bigru, bilstm, temporalcnn, ...)
            family = alias(name)
            if family is not None:
                fixed = {k.removeprefix("model."): v for k, v in family.overrides().items()}
                value, name = {**value, **fixed}, family.name
        if name not in MODELS:
            raise ValueError(
                f"unknown model '{name}'{closest(str(name), MODELS.names())}; choose one of: {', '.join(MODELS.names())}"
            )
        config_cls = MODELS.get(name).config
        return config_cls.model_validate({**value, "name": name})  # type: ignore[union-attr]

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if value in ("auto", "cpu", "mps", "cuda") or value.startswith("cuda:"):
            return value
        raise ValueError("use auto, cpu, cuda, cuda:N or mps")


# --------------------------------------------------------------------------- loading


def dotted_keys() -> list[str]:
    """Every dotted key a config accepts (``model.*`` over all registered families), for hints."""
    keys: list[str] = []

    def walk(cls: type[BaseModel], prefix: str) -> None:
        for name, fld in cls.model_fields.items():
            sub = fld.annotation
            args = [a for a in getattr(sub, "__args__", ()) if isinstance(a, type)]
            section = next((a for a in [sub, *args] if isinstance(a, type) and issubclass(a, BaseModel)), None)
            if name == "model":
                for family in MODELS.names():
                    config = MODELS.get(family).config
                    if config is not None:
                        walk(config, "model.")  # type: ignore[arg-type]
            elif section is not None:
                walk(section, f"{prefix}{name}.")
            else:
                keys.append(prefix + name)

    walk(ExperimentConfig, "")
    return list(dict.fromkeys(keys))


def validate_config(data: dict[str, Any], source: str = "config") -> ExperimentConfig:
    """Validate a plain mapping into an ExperimentConfig, raising a one-line UserError."""
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as err:
        raise UserError(format_validation_error(err, source, ExperimentConfig, data)) from None


def save_config(cfg: BaseModel) -> dict[str, Any]:
    """The JSON-ready mapping of a config; ``validate_config`` of it gives an equal object."""
    return cfg.model_dump(mode="json")


def pack_key(cfg: ExperimentConfig) -> tuple[Any, ...]:
    """The shape parameters of a config: configs with equal keys can train as one pack."""
    key: list[Any] = [cfg.model.name]
    for section in (cfg.model, cfg.train):
        for name, field in type(section).model_fields.items():
            extra = field.json_schema_extra
            if isinstance(extra, dict) and extra.get("shape"):
                key.append((name, getattr(section, name)))
    return tuple(key)
