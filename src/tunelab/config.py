"""The typed config tree: the experiment schema, loading, dotted overrides and round trip.

Config goes in here, validated once, and flows down as plain typed objects.  Nothing below
this module parses user strings or reads the environment.

Fields tagged ``shape`` decide tensor shapes (they form a trial pack's key); every other
field is a *value* parameter that may differ between members of one pack.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator, model_validator

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
    "apply_overrides",
    "format_validation_error",
    "load_config",
    "load_mapping",
    "pack_key",
    "parse_value",
    "save_config",
    "shape",
    "validate_config",
]


def shape(default: Any, description: str, **kw: Any) -> Any:
    """A field that changes tensor shapes (part of the pack key)."""
    return Field(default, description=description, json_schema_extra={"shape": True}, **kw)


class StrictModel(BaseModel):
    """Base of every config section: unknown keys are errors, assignment is validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


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
    normalize: bool = Field(True, description="per-channel z-score with train-split statistics")
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


# --------------------------------------------------------------------------- model


class ModelConfig(StrictModel):
    """Base of every model family's config; ``name`` picks the family from the registry."""

    name: str


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
    class_weights: bool = Field(False, description="weight classes by inverse train frequency")
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
            family = _alias(name)
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


def _fields_at(cls: type[BaseModel], loc: tuple[Any, ...], data: Any) -> list[str]:
    """Valid keys of the config section at ``loc`` (for 'did you mean')."""
    for part in loc:
        field = cls.model_fields.get(str(part))
        if field is None:
            return []
        data = data.get(part, {}) if isinstance(data, dict) else {}
        ann = field.annotation
        if str(part) == "model" and cls is ExperimentConfig:
            name = data.get("name", "gru") if isinstance(data, dict) else "gru"
            ann = MODELS.get(name).config if name in MODELS else ModelConfig
        sub = [a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not sub:
            return []
        cls = sub[0]
    return list(cls.model_fields)


def format_validation_error(err: ValidationError, source: str, root: type[BaseModel], data: Any) -> str:
    """One line naming the file, the dotted key and the fix."""
    parts = []
    for e in err.errors()[:3]:
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        key = ".".join(str(p) for p in loc) or "(top level)"
        if e["type"] == "extra_forbidden":
            valid = _fields_at(root, loc[:-1], data)
            hint = closest(str(loc[-1]), valid) if valid else ""
            parts.append(f"unknown key '{key}'{hint}")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            got = repr(e.get("input"))
            got = got if len(got) <= 60 else got[:57] + "..."  # a missing key's "input" is its whole section
            parts.append(f"{key}: {msg}" + ("" if e["type"] == "missing" else f" (got {got})"))
    more = f" (+{len(err.errors()) - 3} more)" if len(err.errors()) > 3 else ""
    return f"{source}: " + "; ".join(parts) + more


def load_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON file into a dict, with one-line errors naming the file."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: config file not found; check the path")
    try:
        text = p.read_text()
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = getattr(exc, "problem_mark", None)
        line = (
            f" line {where.line + 1}"
            if where is not None
            else (f" line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else "")
        )
        raise UserError(
            f"{p}:{line} is not valid YAML/JSON ({getattr(exc, 'problem', None) or exc}); fix the syntax"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{p}: the top level must be a mapping of sections (data, model, train, ...)")
    return data


def parse_value(text: str) -> Any:
    """Parse an override value: numbers (also 3e-4), booleans, null, lists, or a plain string."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
        if math.isfinite(value) or text.lower() in ("inf", "-inf"):
            return value
    except ValueError:
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str] | dict[str, Any]) -> dict[str, Any]:
    """Return a copy of ``data`` with dotted overrides (``train.lr=3e-4``) applied."""
    items = overrides.items() if isinstance(overrides, dict) else [_split(o) for o in overrides]
    out = json.loads(json.dumps(data))
    for key, value in items:
        node = out
        *head, last = key.split(".")
        for part in head:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = node[part] = {} if nxt is None else nxt
            if not isinstance(nxt, dict):
                raise UserError(f"override '{key}': '{part}' is not a section")
            node = nxt
        node[last] = value
        if key == "model.name":  # a new family starts from its own defaults, keeping shared keys
            family = _alias(value) if isinstance(value, str) and value not in MODELS else None
            if family is not None:  # an alias names a family and the model.* values it fixes
                node[last] = family.name
                for fixed_key, fixed in family.fixed.items():
                    node[fixed_key.removeprefix("model.")] = fixed
            _prune_model_keys(out)
    return out


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


def _alias(name: str) -> Any:
    """The :class:`~tunelab.tune.families.Family` a seed alias names (``bigru`` → gru,
    bidirectional), or None for a name that is no alias."""
    from tunelab.tune.families import ALIASES, resolve_family  # the aliases live with the families

    return resolve_family(name) if name in ALIASES else None


def _prune_model_keys(data: dict[str, Any]) -> None:
    model = data.get("model")
    if isinstance(model, dict) and model.get("name") in MODELS:
        valid = MODELS.get(model["name"]).config.model_fields  # type: ignore[union-attr]
        data["model"] = {k: v for k, v in model.items() if k in valid}


def _split(item: str) -> tuple[str, Any]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise UserError(f"override '{item}' must look like section.key=value, e.g. train.lr=3e-4")
    return key.strip(), parse_value(value.strip())


def validate_config(data: dict[str, Any], source: str = "config") -> ExperimentConfig:
    """Validate a plain mapping into an ExperimentConfig, raising a one-line UserError."""
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as err:
        raise UserError(format_validation_error(err, source, ExperimentConfig, data)) from None


def load_config(
    path: str | Path | None = None, overrides: list[str] | dict[str, Any] | None = None
) -> ExperimentConfig:
    """Load an experiment config from YAML/JSON (or defaults), apply dotted overrides, validate."""
    data = load_mapping(path) if path is not None else {}
    if overrides:
        data = apply_overrides(data, overrides)
    return validate_config(data, str(path) if path is not None else "overrides")


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
