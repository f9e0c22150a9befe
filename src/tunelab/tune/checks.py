"""Checks a study passes before it runs: the data's task and objectives, queued trials, and what a
resumed study must keep (its parameters' kinds, its epoch budget)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.budget import DataSize, data_size, resolve_defaults
from tunelab.config.study import PrunerConfig, StudyConfig
from tunelab.errors import UserError
from tunelab.registry import closest
from tunelab.results.attrs import STUDY
from tunelab.tune.execution.objective import DataCache
from tunelab.tune.space import FAMILY_PARAM, InvalidSample, SearchSpace

if TYPE_CHECKING:
    import optuna

__all__ = [
    "check_budget",
    "check_enqueue",
    "check_history",
    "check_objectives",
    "data_task",
    "enqueue",
    "known_keys",
    "pruner_for",
    "read_enqueue",
]

log = logging.getLogger(__name__)

_TASK_METRICS = {
    "classification": ("loss", "acc", "f1"),
    "regression": ("loss", "mse", "mae"),
    "seq2seq": ("loss", "mse", "mae", "snr_db", "snr_gain_db"),
}


def data_task(space: SearchSpace, cache: DataCache) -> tuple[str, str, DataSize]:
    """The task of the data (decides the default objective), the data-aware defaults line (what
    trials fill in that the study leaves unset) and the training split's size."""
    try:
        cfg = space.to_config({FAMILY_PARAM: space.families[0]} if space.searches_family and space.families else {})
    except InvalidSample as exc:
        raise UserError(f"the base config with the fixed values is invalid: {exc}") from None
    data = cache.get(cfg)
    size = data_size(data)
    return str(data.meta.task), resolve_defaults(cfg, size)[1], size


def check_objectives(objectives: list[str], task: str, source: str) -> None:
    """Each split objective (``val_*``, ``test_*``) must be a metric of the data's ``task``."""
    valid = _TASK_METRICS.get(task, ())
    for m in objectives:
        split, _, metric = m.partition("_")
        if split in ("val", "test") and metric not in valid:
            options = [f"val_{v}" for v in valid] + ["n_params", "seconds"]
            raise UserError(
                f"{source}: objective '{m}' does not exist for a {task} task{closest(m, options)}; use one of: {', '.join(options)}"
            )
        if split == "test":
            log.warning("objective %s selects models on the test split: the reported test score is then optimistic", m)


def read_enqueue(source: str | Path | list[dict[str, Any]] | None) -> tuple[list[Any], str]:
    """``--enqueue FILE``'s configurations (one mapping or a list of them) and how to name them."""
    if source is None:
        return [], "--enqueue"
    if isinstance(source, list):
        return source, "--enqueue"
    import yaml

    path = Path(source)
    where = f"--enqueue {path}"
    if not path.is_file():
        raise UserError(f"{where}: file not found")
    try:
        text = path.read_text()
        items = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise UserError(f"{where}: not valid YAML/JSON ({first}); fix the syntax") from None
    if isinstance(items, dict) and "trials" in items:
        items = items["trials"]
    items = [items] if isinstance(items, dict) else items
    if not isinstance(items, list):
        raise UserError(f"{where}: expected a mapping of parameter → value, or a list of them")
    return items, where


def check_enqueue(items: list[Any], where: str, known: set[str]) -> None:
    for i, params in enumerate(items):
        if not isinstance(params, dict):
            raise UserError(f"{where}: entry {i} must be a mapping of parameter → value")
        for key in params:
            if key not in known:
                raise UserError(
                    f"{where}: entry {i}: '{key}' is not a parameter of this study{closest(key, sorted(known))}"
                )


def known_keys(space: SearchSpace) -> set[str]:
    return set(space.params) | set(space.fixed) | {FAMILY_PARAM}


def enqueue(study: optuna.Study, items: list[dict[str, Any]]) -> int:
    """Queue known configurations to run first."""
    for params in items:
        study.enqueue_trial(params, skip_if_exists=True)
    return len(items)


def check_history(study: optuna.Study, space: SearchSpace) -> None:
    """A resumed study's parameters must keep their kind and choices (Optuna cannot mix them)."""
    from optuna.distributions import check_distribution_compatibility

    from tunelab.tune.space import distribution

    seen: dict[str, Any] = {}
    for t in study.get_trials(deepcopy=False):
        seen.update(t.distributions)
    new = {k: distribution(v) for k, v in space.params.items()}
    if space.searches_family:
        from optuna.distributions import CategoricalDistribution

        new[FAMILY_PARAM] = CategoricalDistribution(list(space.families or []))
    for key, dist in new.items():
        if key in seen:
            try:
                check_distribution_compatibility(seen[key], dist)
            except ValueError:
                raise UserError(
                    f"--resume: '{key}' was searched as {seen[key]} in study {study.study_name}, now as {dist}; "
                    "a categorical's choices and a parameter's kind/log scale cannot change within a study: restore them or start a new study"
                ) from None


def pruner_for(cfg: StudyConfig, objectives: list[str], source: str) -> PrunerConfig:
    """The study's pruner; none for several objectives: Optuna prunes only single-objective trials,
    so a pruner chosen for a multi-objective study is refused rather than silently idle."""
    if len(objectives) == 1 or cfg.pruner.name == "none":
        return cfg.pruner
    if "pruner" in cfg.model_fields_set:
        raise UserError(
            f"{source}: pruner '{cfg.pruner.name}' with {len(objectives)} objectives ({', '.join(objectives)}): "
            "Optuna does not prune multi-objective trials; use --pruner none, or one objective"
        )
    return PrunerConfig(name="none")


def check_budget(study: optuna.Study, space: SearchSpace, cfg: StudyConfig) -> None:
    """A resumed study keeps its epoch budget: trials of 30 and of 5 epochs are not comparable."""
    if "train.max_epochs" in space.params:  # searched: each trial has its own
        return
    stored = (study.user_attrs.get(STUDY.STUDY_CONFIG) or {}).get("base") or {}
    before = (stored.get("train") or {}).get("max_epochs")
    now = cfg.base.train.max_epochs
    if before is not None and before != now:
        raise UserError(
            f"--resume: study {study.study_name} trains for train.max_epochs={before}, this run for {now} (--epochs); "
            f"one study keeps one budget: drop --epochs to continue it, or start a new study with --study-name"
        )
