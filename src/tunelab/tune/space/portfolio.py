"""The default portfolio: what ``tunelab tune --data-path DIR`` searches when no model is named.

With no ``--model``, no study file and no ``model.*`` override, the study searches across the
families whose config class declares a :class:`~tunelab.models.base.PortfolioEntry` (the field's
strong deep families for time-series classification and regression -- InceptionTime, ResNet,
FCN, a Transformer encoder and a GRU), keeping only those that build for the data's task:

* each family's **known-good configuration** (its paper's settings, declared beside the family)
  is queued first, in the families' rank order, so a short budget has run every family once;
* each family searches a **few shape groups** (the values listed in its entry; every other
  shape field keeps the paper's default) with the **value parameters** (learning rate, weight
  decay, dropout, jitter) searched inside each, and the batch size left to the data-aware
  default, so trials share tensor shapes and pack on a GPU;
* TPE spends the rest of the budget, with **Hyperband** pruning on the epoch reports: its first
  rung is ~100 optimizer steps, so many configurations are tried cheaply;
* the study gets the default **time budget**, :data:`DEFAULT_TIMEOUT`, unless it has one.

Everything the user set (sampler, pruner, trials, timeout) wins over the portfolio's choice.
"""

from __future__ import annotations

import math
from typing import Any

from tunelab.budget import MIN_STEPS, DataSize, resolve_defaults
from tunelab.config import ParamSpec, PrunerConfig, StudyConfig
from tunelab.models.base import PortfolioEntry, portfolio_entry, supported_tasks
from tunelab.registry import MODELS
from tunelab.tune.options import TuneOptions

__all__ = [
    "DEFAULT_TIMEOUT",
    "VALUE_SPACE",
    "budget_line",
    "known_good",
    "portfolio_families",
    "portfolio_pruner",
    "portfolio_space",
    "portfolio_study",
]

#: The default study's wall-clock budget in seconds: a CPU laptop's coffee break.
DEFAULT_TIMEOUT = 600.0
#: Value parameters searched inside every shape group (they vary within a pack).
VALUE_SPACE: dict[str, dict[str, Any]] = {
    "train.lr": {"low": 1e-4, "high": 1e-2, "log": True},
    "train.weight_decay": {"low": 1e-6, "high": 1e-2, "log": True},
    "model.dropout": {"low": 0.0, "high": 0.5},
    "data.augment.jitter": {"low": 0.0, "high": 0.2},
}


def _entries(task: str) -> list[tuple[str, PortfolioEntry]]:
    out = []
    for entry in MODELS:
        own = portfolio_entry(entry.config) if entry.config is not None else None
        if own is not None and task in supported_tasks(entry.config):  # type: ignore[arg-type]
            out.append((entry.name, own))
    return sorted(out, key=lambda item: (item[1].rank, item[0]))


def portfolio_families(task: str) -> list[str]:
    """The registered families in the portfolio for ``task``, in rank order."""
    return [name for name, _ in _entries(task)]


def portfolio_space(families: list[str]) -> dict[str, ParamSpec]:
    """The value parameters plus each family's shape groups (a shape field is sampled only for
    the families that list it; families listing one field must agree on its values)."""
    space: dict[str, dict[str, Any]] = {k: dict(v) for k, v in VALUE_SPACE.items()}
    owners: dict[str, list[str]] = {}
    for name in families:
        entry = portfolio_entry(MODELS.get(name).config)  # type: ignore[arg-type]
        for field, values in (entry.groups if entry else {}).items():
            key = f"model.{field}"
            if key in space and space[key]["choices"] != list(values):
                raise ValueError(f"portfolio: {name} and {owners[key]} list different values for {key}")
            space[key] = {"choices": list(values)}
            owners.setdefault(key, []).append(name)
    for key, names in owners.items():
        space[key]["when"] = {"model.name": names}
    return {k: ParamSpec.model_validate(v) for k, v in space.items()}


def known_good(families: list[str]) -> list[dict[str, Any]]:
    """Each family's known-good configuration as trial parameters (queued first, in order)."""
    out = []
    for name in families:
        entry = portfolio_entry(MODELS.get(name).config)  # type: ignore[arg-type]
        if entry is None:
            continue
        shapes = {f"model.{field}": values[0] for field, values in entry.groups.items()}
        out.append({"model.name": name, **shapes, **entry.start})
    return out


def portfolio_pruner(steps_per_epoch: int, max_epochs: int) -> PrunerConfig:
    """Hyperband over epochs: the first rung after ~MIN_STEPS/4 optimizer steps, the last at the
    data-aware epoch ceiling, brackets a factor of 3 apart."""
    first = max(1, math.ceil(MIN_STEPS / 4 / max(1, steps_per_epoch)))
    top = max(first * 3, max_epochs)
    return PrunerConfig(name="hyperband", options={"min_resource": first, "max_resource": top, "reduction_factor": 3})


def portfolio_study(cfg: StudyConfig, task: str, size: DataSize) -> tuple[StudyConfig, list[dict[str, Any]]]:
    """``cfg`` searching the portfolio for ``task``, and the known-good trials to queue first.

    ``size`` (the training split) sizes the pruner's rungs through the data-aware defaults.  A
    task no family serves leaves ``cfg`` as it is.
    """
    families = portfolio_families(task)
    if not families:
        return cfg, []
    resolved, _ = resolve_defaults(cfg.base, size)
    tc = resolved.train
    steps = tc.steps_per_epoch or max(1, math.ceil(size.n_train / tc.batch_size))
    update: dict[str, Any] = {"families": families, "space": portfolio_space(families)}
    if "pruner" not in cfg.model_fields_set:
        update["pruner"] = portfolio_pruner(math.ceil(steps / tc.grad_accum), tc.max_epochs)
    if cfg.budget.n_trials is None and cfg.budget.timeout is None:
        update["budget"] = cfg.budget.model_copy(update={"timeout": DEFAULT_TIMEOUT})
    if cfg.name in (None, "tune"):
        update["name"] = "portfolio"
    return cfg.model_copy(update=update), known_good(families)


def budget_line(timeout: float | None, n_trials: int | None, default: bool) -> str:
    """The header's budget line: ``budget: 10 min (default; --timeout to change)``."""
    parts = []
    if timeout is not None:
        parts.append(f"{timeout / 60:g} min" if timeout >= 60 and timeout % 60 == 0 else f"{timeout:g} s")
    if n_trials is not None:
        parts.append(f"{n_trials} trials")
    what = " or ".join(parts) or "unlimited"
    how = "default; --timeout to change" if default else "whichever ends first" if len(parts) > 1 else ""
    return f"budget: {what}" + (f" ({how})" if how else "")


def portfolio_for(
    cfg: StudyConfig, opts: TuneOptions, task: str, size: DataSize
) -> tuple[StudyConfig, list[dict[str, Any]], str]:
    """The default portfolio when no model was named (the study and its known-good trials), and
    the header's budget line."""
    queue: list[dict[str, Any]] = []
    default = cfg.budget.n_trials is None and cfg.budget.timeout is None
    # families or a space named (--auto-tune-all's per-family studies too): the user chose
    if opts.portfolio and opts.phase is None and opts.grid is None and cfg.families is None and cfg.space is None:
        cfg, queue = portfolio_study(cfg, task, size)
    return cfg, queue, budget_line(cfg.budget.timeout, cfg.budget.trials(), default and bool(queue))
