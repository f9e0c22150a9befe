"""The experiment-set file: named experiments, each a set of dotted overrides on one base config.

```yaml
name: seed004                   # the study (and directory) the set runs in
base: ../configs/gru.yaml       # a config file (relative to this file) or an inline mapping
overrides: {train.max_epochs: 8}  # applied to the base, for every experiment
repeats: 3                      # seeds base.seed, base.seed+1, ... (or seeds: [0, 7, 11])
baseline: gru_h128              # the row every change is measured against (default: the first)
metrics: [test_acc, test_f1]    # the table's and plots' leading metrics (default: all)
experiments:
  gru_h128: {}
  gru_h64: {model.hidden_dim: 64}
  lstm: {model.name: lstm}
  bigger: {overrides: {model.hidden_dim: 256}, repeats: 5, description: "more seeds here"}
```
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from tunelab.config import (
    ExperimentConfig,
    StrictModel,
    apply_overrides,
    format_validation_error,
    load_mapping,
    save_config,
    split_override,
    validate_config,
)
from tunelab.config.loader import resolve_base
from tunelab.config.study import METRICS, check_kind
from tunelab.errors import UserError

__all__ = [
    "COMPARABLE",
    "Experiment",
    "ExperimentSet",
    "Job",
    "check_metric",
    "config_hash",
    "flatten_overrides",
    "load_experiment_set",
]

#: What a comparison can show: a run's final metrics (tunelab.train.trainer) and the cost columns.
COMPARABLE = (
    *(m for m in METRICS if m not in ("seconds", "epochs")),
    "test_ece",
    "test_ece_scaled",
    "seconds_per_epoch",
)


def check_metric(name: str) -> str:
    """``name`` if a comparison can show it; else a ``ValueError`` naming the closest ones."""
    if name not in COMPARABLE:
        from tunelab.registry import closest

        raise ValueError(
            f"unknown metric '{name}'{closest(name, list(COMPARABLE))}; use one of: {', '.join(COMPARABLE)}"
        )
    return name


def flatten_overrides(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{model: {hidden_dim: 64}}``, ``{model.hidden_dim: 64}`` or ``["model.hidden_dim=64"]`` → dotted dict."""
    if value is None:
        return {}
    if isinstance(value, list | tuple):
        out: dict[str, Any] = {}
        for item in value:
            try:
                key, parsed = split_override(str(item))
            except UserError as exc:  # raised inside a pydantic validator: a ValueError there
                raise ValueError(str(exc)) from None
            out[key] = parsed
        return out
    if not isinstance(value, dict):
        raise ValueError("overrides must be a mapping of dotted keys to values, or a list of key=value strings")
    out = {}
    for k, v in value.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out |= flatten_overrides(v, key + ".")
        else:
            out[key] = v
    return out


def _model_name_first(overrides: dict[str, Any]) -> dict[str, Any]:
    # a new family starts from its own defaults, so its name must be set before its own keys
    return dict(sorted(overrides.items(), key=lambda kv: kv[0] != "model.name"))


class Experiment(StrictModel):
    """One named experiment: overrides on the base, optionally its own number of repeats."""

    overrides: dict[str, Any] = Field(default_factory=dict, description="dotted overrides on the base config")
    repeats: int | None = Field(None, ge=1, description="seeds for this experiment (default: the set's)")
    description: str = ""

    @field_validator("overrides", mode="before")
    @classmethod
    def _flat(cls, value: Any) -> dict[str, Any]:
        return flatten_overrides(value)


class ExperimentSet(StrictModel):
    """A designed set of experiments compared against one baseline."""

    name: str = Field(..., min_length=1, pattern=r"^[\w.-]+$", description="study and directory name")
    description: str = ""
    base: str | dict[str, Any] = Field(default_factory=dict, description="base config: a file path or a mapping")
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="dotted overrides applied to the base for all experiments"
    )
    repeats: int = Field(1, ge=1, description="seeds per experiment: base seed, base seed + 1, ...")
    seeds: list[int] | None = Field(None, min_length=1, description="explicit seeds (instead of repeats)")
    baseline: str | None = Field(None, description="experiment every change is measured against (default: the first)")
    metrics: list[str] = Field(
        default_factory=list, description="leading metrics of the table and plots; the first is the study objective"
    )
    level: float = Field(0.95, gt=0, lt=1, description="confidence level of the intervals")
    experiments: dict[str, Experiment] = Field(..., min_length=1)

    @field_validator("overrides", mode="before")
    @classmethod
    def _flat(cls, value: Any) -> dict[str, Any]:
        return flatten_overrides(value)

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, value: list[str]) -> list[str]:
        return [check_metric(m) for m in value]  # a typo fails here, not after the first trial

    @field_validator("experiments", mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        """An experiment given as a plain override mapping (or list) is ``{overrides: ...}``."""
        if not isinstance(value, dict):
            raise ValueError("must be a mapping of experiment names to overrides")
        out = {}
        for name, spec in value.items():
            long_form = isinstance(spec, dict) and ("overrides" in spec or "repeats" in spec or "description" in spec)
            out[str(name)] = spec if long_form else {"overrides": spec}
        return out

    @model_validator(mode="after")
    def _baseline_known(self) -> ExperimentSet:
        if self.baseline is not None and self.baseline not in self.experiments:
            from tunelab.registry import closest

            names = list(self.experiments)
            raise ValueError(
                f"baseline '{self.baseline}' is not an experiment{closest(self.baseline, names)}; use one of {', '.join(names)}"
            )
        return self

    @property
    def baseline_name(self) -> str:
        return self.baseline or next(iter(self.experiments))


@dataclass(frozen=True)
class Job:
    """One experiment at one seed: the concrete config to train."""

    experiment: str
    seed: int
    config: ExperimentConfig
    key: str  # hash of the config: a finished job with the same key is not re-run

    @property
    def label(self) -> str:
        return f"{self.experiment} seed {self.seed}"


def config_hash(cfg: ExperimentConfig) -> str:
    """A short stable hash of everything that affects the result (device excluded)."""
    data = save_config(cfg)
    data.pop("device", None)
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _seeds(spec: ExperimentSet, exp: Experiment, base_seed: int) -> list[int]:
    """The set's seeds (``seeds``, else ``repeats`` from the base seed), cut or extended to ``exp.repeats``."""
    seeds = list(spec.seeds) if spec.seeds else [base_seed + i for i in range(spec.repeats)]
    n = exp.repeats or len(seeds)
    while len(seeds) < n:
        seeds.append(max(seeds) + 1)
    return seeds[:n]


def load_experiment_set(path: str | Path, overrides: list[str] | None = None) -> tuple[ExperimentSet, list[Job]]:
    """Read and validate an experiment-set file; every experiment × seed config is validated now.

    ``overrides`` (dotted ``key=value``) apply to the base of every experiment, after the file's own.
    """
    p = Path(path)
    data = load_mapping(p)
    try:
        spec = ExperimentSet.model_validate(data)
    except ValidationError as err:
        check_kind(data, str(p), "experiment set")  # a study file or a run config given by mistake
        raise UserError(format_validation_error(err, str(p), ExperimentSet, data)) from None
    if isinstance(spec.base, str):
        base = resolve_base(spec.base, p.parent)
        source = str(Path(spec.base) if Path(spec.base).is_absolute() else p.parent / spec.base)
    else:
        base, source = dict(spec.base), f"{p} (base)"
    common = spec.overrides | flatten_overrides(list(overrides or []))
    base = apply_overrides(base, _model_name_first(common))
    base_seed = validate_config(base, source).seed
    jobs = []
    for name, exp in spec.experiments.items():
        for seed in _seeds(spec, exp, base_seed):
            merged = apply_overrides(base, _model_name_first(exp.overrides | {"seed": seed}))
            cfg = validate_config(merged, f"{p}: experiment '{name}'")
            jobs.append(Job(name, seed, cfg, config_hash(cfg)))
    return spec, jobs
