"""The study file: a validated ``StudyConfig`` (base experiment, search space, phases, grids, ...).

A study file is YAML (or JSON)::

    name: asl-bilstm                  # study name (a new study gets "-<timestamp>" appended)
    base: {data: {name: japanese_vowels}, model: {name: gru}}   # or a path to an experiment file
    families: [gru, lstm]             # optional: tune model.name too, with per-family spaces
    space:                            # keyed by dotted config paths
      train.lr: {low: 1.0e-4, high: 1.0e-2, log: true}
      model.hidden_dim: [32, 64, 128]               # a list is shorthand for choices
      model.num_heads: {choices: [2, 4], when: {model.name: transformer}}
    phases:                           # --phase NAME tunes only these (earlier phases' best fixed)
      coarse: [model.hidden_dim, train.lr]
      regularisation: {model.dropout: {low: 0.0, high: 0.5}}
    grids:                            # --grid NAME: exhaustive search over these values
      quick: {train.batch_size: [8, 16], train.lr: [1.0e-4, 5.0e-4]}
    objective: val_f1                 # or {metrics: [val_f1, n_params], directions: [maximize, minimize]}
    sampler: tpe                      # or {name: tpe, options: {multivariate: true}}
    pruner: {name: median, options: {n_startup_trials: 5, n_warmup_steps: 5}}
    budget: {n_trials: 50, timeout: null}
    storage: null                     # default sqlite:///<save-dir>/tunelab.db
    seed: 0

Every mistake is a one-line :class:`~tunelab.errors.UserError` naming the file and the key.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal, get_args, get_origin

from pydantic import BaseModel, Field, field_validator, model_validator

from tunelab.config import search
from tunelab.config.base import StrictModel
from tunelab.config.experiment import ExperimentConfig
from tunelab.config.families import check_family, resolve_family
from tunelab.errors import UserError
from tunelab.registry import MODELS, PRUNERS, SAMPLERS, Registry, closest

__all__ = [
    "METRICS",
    "BudgetConfig",
    "ObjectiveConfig",
    "ParamSpec",
    "PrunerConfig",
    "SamplerConfig",
    "StudyConfig",
    "check_config_key",
    "check_kind",
    "file_kind",
    "is_study_mapping",
    "metric_direction",
    "study_hint",
]

_SPLIT_METRICS = ("loss", "acc", "f1", "mse", "mae", "snr_db", "snr_gain_db")
#: Every name an objective may use: split metrics of a finished run, and facts about the run.
METRICS = (
    "train_loss",
    *(f"val_{m}" for m in _SPLIT_METRICS),
    *(f"test_{m}" for m in _SPLIT_METRICS),
    "gap",
    "n_params",
    "seconds",
    "epochs",
)
_MAXIMIZE = ("acc", "f1", "snr_db", "snr_gain_db")
Scalar = bool | int | float | str | None


def metric_direction(metric: str) -> Literal["maximize", "minimize"]:
    """Accuracy, F1 and SNR are maximized; losses, errors, sizes and times minimized."""
    return "maximize" if metric.endswith(_MAXIMIZE) else "minimize"


# --------------------------------------------------------------------------- parameters


class ParamSpec(StrictModel):
    """One searched parameter.  ``type`` is inferred when omitted (choices → categorical,
    integer bounds → int, otherwise float).  ``when`` activates it only if every listed
    parameter (or config value) equals the given value or one of the given values."""

    type: Literal["float", "int", "categorical"] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Scalar] | None = None
    when: dict[str, Scalar | list[Scalar]] | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):  # `key: [a, b]` is `key: {choices: [a, b]}`
            return {"choices": list(value)}
        if isinstance(value, dict) and value.get("type") is None and value.get("choices") is None:
            # integer bounds (and step) mean an int parameter; decided before floats coerce them
            bounds = [value.get("low"), value.get("high"), value.get("step", 1)]
            ints = all(isinstance(v, int) and not isinstance(v, bool) for v in bounds)
            return {**value, "type": "int" if ints else "float"}
        return value

    @model_validator(mode="after")
    def _check(self) -> ParamSpec:
        if self.type is None:
            self.type = "categorical"
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("choices is empty; list at least one value")
            if self.low is not None or self.high is not None or self.log or self.step is not None:
                raise ValueError("a categorical parameter takes only choices (no low/high/log/step)")
            return self
        if self.choices is not None:
            raise ValueError(f"a {self.type} parameter takes low/high, not choices; drop 'type' or 'choices'")
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} parameter needs both low and high")
        if self.low > self.high:
            raise ValueError(f"low={self.low:g} > high={self.high:g}; swap them")
        if self.log and self.low <= 0:
            raise ValueError(f"log=true needs low > 0 (got low={self.low:g})")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined; drop one")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"step must be > 0 (got {self.step:g})")
        if self.type == "int":
            for name in ("low", "high", "step"):
                v = getattr(self, name)
                if v is not None and not float(v).is_integer():
                    raise ValueError(f"an int parameter needs an integer {name} (got {v})")
        return self

    def _steps(self) -> int:
        """How many steps fit between low and high (a step may stop short of high)."""
        assert self.low is not None and self.high is not None and self.step is not None
        return math.floor((self.high - self.low) / self.step + 1e-9)

    def values(self) -> list[Any] | None:
        """All values of a discrete parameter (choices, ints, or a stepped float), else None."""
        if self.type == "categorical":
            return list(self.choices or [])
        assert self.low is not None and self.high is not None
        if self.type == "int" and not self.log:
            step = int(self.step or 1)
            return list(range(int(self.low), int(self.high) + 1, step))
        if self.type == "float" and self.step is not None:
            return [round(self.low + i * self.step, 12) for i in range(self._steps() + 1)]
        return None

    def ends(self) -> tuple[Any, Any]:
        """The lowest and highest value a numeric parameter can take."""
        assert self.low is not None and self.high is not None
        top = self.high if self.step is None else self.low + self._steps() * self.step
        return (int(self.low), int(top)) if self.type == "int" else (self.low, top)

    def describe(self) -> str:
        """A short human-readable range: ``[1e-4, 1e-2] log`` or ``{a, b}``."""
        if self.type == "categorical":
            return "{" + ", ".join(map(str, self.choices or [])) + "}"
        extra = " log" if self.log else (f" step {self.step:g}" if self.step is not None else "")
        return f"[{self.low:g}, {self.high:g}]{extra}"


# --------------------------------------------------------------------------- sections


class ObjectiveConfig(StrictModel):
    """What to optimize.  Empty ``metrics``: val_f1 (classification) or val_loss (regression,
    seq2seq), decided from the data.  Empty ``directions``: from each metric's name."""

    metrics: list[str] = Field(default_factory=list)
    directions: list[Literal["maximize", "minimize"]] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"metrics": [m.strip() for m in value.split(",") if m.strip()]}
        if isinstance(value, list):
            return {"metrics": value}
        return value

    @field_validator("metrics")
    @classmethod
    def _known(cls, metrics: list[str]) -> list[str]:
        for m in metrics:
            if m not in METRICS:
                raise ValueError(f"unknown metric '{m}'{closest(m, list(METRICS))}; use one of: {', '.join(METRICS)}")
        if len(set(metrics)) != len(metrics):
            raise ValueError("a metric is listed twice")
        return metrics

    @model_validator(mode="after")
    def _lengths(self) -> ObjectiveConfig:
        if self.directions and len(self.directions) != len(self.metrics):
            raise ValueError(
                f"{len(self.metrics)} metrics but {len(self.directions)} directions; give one direction per metric or none"
            )
        return self

    def resolved(self, task: str) -> tuple[list[str], list[str]]:
        """(metrics, directions) with the task's defaults filled in."""
        metrics = self.metrics or (["val_f1"] if task == "classification" else ["val_loss"])
        return metrics, list(self.directions) or [metric_direction(m) for m in metrics]


def _check_options(registry: Registry[Any], name: str, options: dict[str, Any], reserved: tuple[str, ...] = ()) -> None:
    valid, var_kw = search.option_names(registry, name)
    for key in options:
        if key in reserved:
            raise ValueError(f"option '{key}' is set by tunelab; remove it")
        if key not in valid and not var_kw:
            raise ValueError(
                f"unknown {name} option '{key}'{closest(key, valid)}; valid: {', '.join(v for v in valid if v not in reserved)}"
            )


class _ByName(StrictModel):
    """An Optuna sampler or pruner chosen by name (or a bare string); ``options`` go to its constructor."""

    registry: ClassVar[Registry[Any]]
    reserved: ClassVar[tuple[str, ...]] = ()  # constructor keywords tunelab sets itself

    name: str
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        name = cls.registry.resolve(name.lower())
        known = cls.registry.names()
        if name not in known:
            raise ValueError(
                f"unknown {cls.registry.kind} '{name}'{closest(name, known)}; choose one of: {', '.join(known)}"
            )
        return name

    @model_validator(mode="after")
    def _options(self) -> _ByName:
        _check_options(self.registry, self.name, self.options, reserved=self.reserved)
        return self


class SamplerConfig(_ByName):
    """Optuna sampler by name; ``options`` go to its constructor (``seed`` comes from the study)."""

    registry: ClassVar[Registry[Any]] = SAMPLERS
    reserved: ClassVar[tuple[str, ...]] = ("seed", "search_space")

    name: str = "tpe"


class PrunerConfig(_ByName):
    """Optuna pruner by name.  Median defaults to 5 startup trials and 5 warmup epochs (seed 001)."""

    registry: ClassVar[Registry[Any]] = PRUNERS

    name: str = "median"


class BudgetConfig(StrictModel):
    """How much to run: trials (shared by all workers) and/or seconds, whichever ends first.
    On ``--resume`` the trials are added to those the study already has (Optuna's rule)."""

    n_trials: int | None = Field(
        None,
        ge=1,
        description="trials to run in this invocation; default 20, a whole grid with --grid, unlimited with a timeout",
    )
    timeout: float | None = Field(
        None, gt=0, description="seconds for the whole study; running trials stop at their next epoch end"
    )
    max_failures_in_a_row: int | None = Field(
        10, ge=1, description="stop the study after this many consecutive failed trials"
    )

    def trials(self, grid_size: int | None = None) -> int | None:
        """Trials to run: the explicit number, else the whole grid, else none with a timeout, else 20."""
        if self.n_trials is not None:
            return self.n_trials
        if grid_size is not None:
            return grid_size
        return None if self.timeout is not None else 20


class StudyConfig(StrictModel):
    """A study: what to search, how, for how long, and where its state lives."""

    name: str | None = Field(None, description="study name; default: the study file's stem")
    base: ExperimentConfig = Field(
        default_factory=lambda: ExperimentConfig.model_validate({}),
        description="the experiment every trial starts from",
    )
    families: list[str] | None = Field(None, description="model families to search over (adds model.name)")
    space: dict[str, ParamSpec] | None = Field(
        None, description="searched parameters; none: tunelab's default space per family"
    )
    phases: dict[str, list[str] | dict[str, ParamSpec] | Literal["all"]] = Field(default_factory=dict)
    grids: dict[str, dict[str, list[Scalar]]] = Field(default_factory=dict)
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig.model_construct)
    sampler: SamplerConfig = Field(default_factory=SamplerConfig.model_construct)
    pruner: PrunerConfig = Field(default_factory=PrunerConfig.model_construct)
    budget: BudgetConfig = Field(default_factory=BudgetConfig.model_construct)
    storage: str | None = Field(None, description="Optuna storage URL; default sqlite:///<save-dir>/tunelab.db")
    heartbeat_interval: int = Field(10, ge=1, description="seconds between a running trial's heartbeats")
    grace_period: int = Field(
        60, ge=2, description="a RUNNING trial with no heartbeat for this long is failed and retried"
    )
    max_retry: int = Field(2, ge=0, description="times a trial lost with its worker is retried")
    seed: int = Field(0, description="the sampler's seed (training uses base.seed)")

    @field_validator("base", mode="before")
    @classmethod
    def _base(cls, value: Any) -> Any:
        return ExperimentConfig.model_validate({}) if value is None else value

    @field_validator("families")
    @classmethod
    def _families(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("families is empty; list at least one model family")
        for f in value:
            check_family(f)
        return value

    @field_validator("grids")
    @classmethod
    def _grids(cls, grids: dict[str, dict[str, list[Scalar]]]) -> dict[str, dict[str, list[Scalar]]]:
        for name, grid in grids.items():
            if not grid:
                raise ValueError(f"grid '{name}' is empty")
            for key, values in grid.items():
                if not values:
                    raise ValueError(f"grid '{name}': '{key}' has no values")
        return grids

    def family_names(self) -> list[str]:
        """The candidate model families (for validating ``model.*`` keys)."""
        return [resolve_family(f).name for f in self.families] if self.families else [self.base.model.name]


# --------------------------------------------------------------------------- config keys


def _sections(annotation: Any) -> list[type[BaseModel]]:
    args = get_args(annotation) or (annotation,)
    return [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]


def check_config_key(key: str, families: list[str], where: str) -> None:
    """Raise a one-line UserError unless ``key`` names a field of the experiment config
    (``model.*`` fields must exist in at least one of ``families``)."""
    parts = key.split(".")
    classes: list[type[BaseModel]] = [ExperimentConfig]
    for i, part in enumerate(parts):
        if not classes:  # a leaf was reached but the key goes on
            raise UserError(f"{where}: '{key}': '{'.'.join(parts[:i])}' is a value, not a section")
        fields: dict[str, Any] = {}
        for c in classes:
            fields.update(c.model_fields)
        if part not in fields:
            raise UserError(f"{where}: unknown config key '{key}'{_suggest_key(parts[:i], part, list(fields))}")
        if classes == [ExperimentConfig] and part == "model":
            classes = [MODELS.get(f).config for f in families if f in MODELS]  # type: ignore[misc]
            continue
        ann = fields[part].annotation
        if (
            get_origin(ann) is dict
            or ann is dict
            or (get_args(ann) and any(get_origin(a) is dict for a in get_args(ann)))
        ):
            return  # free-form mapping (data.options): any sub-key
        classes = _sections(ann)


def _suggest_key(prefix: list[str], part: str, valid: list[str]) -> str:
    hint = closest(part, valid)
    if not hint:
        return ""
    name = hint.split("'")[1]
    return f" (did you mean '{'.'.join([*prefix, name])}'?)"


# --------------------------------------------------------------------------- loading


_STUDY_ONLY = set(StudyConfig.model_fields) - set(ExperimentConfig.model_fields)


def is_study_mapping(data: dict[str, Any]) -> bool:
    """A study file has study keys (base, space, ...); a plain experiment file has none."""
    return bool(set(data) & _STUDY_ONLY)


_RUN_WITH = {
    "experiment set": "tunelab experiments {}",
    "study file": "tunelab tune -c {}",
    "run config": "tunelab train -c {}",
}


def file_kind(data: Any) -> str | None:
    """What a tunelab YAML/JSON file is, by its top-level keys: an experiment set (experiments:),
    a study file (space:, objective:, ...), a run config (data:, model:, train:, ...), or None."""
    keys = set(data) if isinstance(data, dict) else set()
    if "experiments" in keys:
        return "experiment set"
    if keys & (_STUDY_ONLY - {"name", "base"}):  # an experiment set has a name and a base too
        return "study file"
    if keys & set(ExperimentConfig.model_fields):
        return "run config"
    return None


def check_kind(data: Any, source: str, *accepted: str) -> None:
    """A one-line ``UserError`` when a command is given another kind of tunelab file than the
    ``accepted`` ones (the first names what the command reads)."""
    kind = file_kind(data)
    if kind is not None and kind not in accepted:
        a, b = ("an" if k[0] in "aeiou" else "a" for k in (kind, accepted[0]))
        raise UserError(
            f"{source}: this is {a} {kind}, not {b} {accepted[0]}; run it with `{_RUN_WITH[kind].format(source)}`"
        )


def study_hint(loc: list[str]) -> str:
    """' (did you mean ...)' for an unknown key of a study file at ``loc``."""
    last = loc[-1]
    if len(loc) == 1:
        return closest(last, list(StudyConfig.model_fields))
    sections: dict[str, type[BaseModel]] = {
        "objective": ObjectiveConfig,
        "sampler": SamplerConfig,
        "pruner": PrunerConfig,
        "budget": BudgetConfig,
    }
    section = sections.get(loc[0])
    if section is not None:
        return closest(last, list(section.model_fields))
    if loc[0] in ("space", "phases"):
        return closest(last, list(ParamSpec.model_fields))
    return ""
