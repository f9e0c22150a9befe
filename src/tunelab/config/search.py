"""Optuna's samplers and pruners, registered by name like models (one list, read by the study
schema, the factory in :mod:`tunelab.tune.study` and the CLI help).

Each entry's function returns its Optuna class, so Optuna is imported only when a study is built.
A plugin registers another one the same way: ``@SAMPLERS.register("mine")`` on a function that
returns a ``BaseSampler`` subclass.  ``defaults`` are tunelab's options where they differ from Optuna's.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from tunelab.registry import PRUNERS, SAMPLERS, Registry

__all__ = ["option_names", "optuna_class"]


def _loader(module: str, cls: str, doc: str) -> Callable[[], type]:
    def load() -> type:
        return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]

    load.__doc__ = doc
    return load


# name: (Optuna class, one-line help, aliases, tunelab's defaults)
_BUILTIN: dict[Registry[Any], tuple[str, dict[str, tuple[str, str, tuple[str, ...], dict[str, Any]]]]] = {
    SAMPLERS: (
        "optuna.samplers",
        {
            # multivariate + group: a conditional space's model parameters are sampled together
            "tpe": ("TPESampler", "tree-structured Parzen estimator", (), {"multivariate": True, "group": True}),
            "random": ("RandomSampler", "independent uniform sampling", (), {}),
            "grid": ("GridSampler", "every point of a study's grid (--grid NAME)", (), {}),
            "cmaes": ("CmaEsSampler", "CMA-ES, one objective (needs cmaes)", ("cma", "cma-es"), {}),
            "gp": ("GPSampler", "Gaussian-process Bayesian optimisation", (), {}),
            "qmc": ("QMCSampler", "quasi-Monte Carlo (Sobol)", (), {"scramble": True}),
            "nsga2": ("NSGAIISampler", "NSGA-II, for several objectives", ("nsgaii",), {}),
        },
    ),
    PRUNERS: (
        "optuna.pruners",
        {
            # seed 001: 5 startup trials and 5 warmup epochs
            "median": (
                "MedianPruner",
                "below the median at the same epoch",
                (),
                {"n_startup_trials": 5, "n_warmup_steps": 5},
            ),
            "percentile": (
                "PercentilePruner",
                "below a percentile at the same epoch",
                (),
                {"percentile": 25.0, "n_startup_trials": 5, "n_warmup_steps": 5},
            ),
            "asha": ("SuccessiveHalvingPruner", "asynchronous successive halving", (), {}),
            "successive_halving": ("SuccessiveHalvingPruner", "successive halving (as asha)", ("sha",), {}),
            "hyperband": (
                "HyperbandPruner",
                "brackets of successive halving",
                (),
                {"min_resource": 1, "reduction_factor": 3},
            ),
            "none": ("NopPruner", "never prune", ("nop", "off"), {}),
        },
    ),
}
for _registry, (_module, _entries) in _BUILTIN.items():
    for _name, (_cls, _doc, _aliases, _defaults) in _entries.items():
        _registry.register(_name, aliases=_aliases, defaults=_defaults)(_loader(_module, _cls, _doc))


def optuna_class(registry: Registry[Any], name: str) -> type:
    """The Optuna class a sampler or pruner name stands for."""
    return registry.get(name).fn()  # type: ignore[no-any-return]


def option_names(registry: Registry[Any], name: str) -> tuple[list[str], bool]:
    """Constructor keywords of a sampler or pruner, and whether it takes ``**kwargs`` too."""
    params = inspect.signature(optuna_class(registry, name)).parameters
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    return [n for n, p in params.items() if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)], var_kw
