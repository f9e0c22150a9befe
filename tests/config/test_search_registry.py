"""Samplers and pruners are listed once, in their registries: the schema, the factory and the CLI read them."""

from __future__ import annotations

import optuna
import pytest
from typer.testing import CliRunner

from tunelab.cli import app
from tunelab.config import PrunerConfig, SamplerConfig
from tunelab.config.search import optuna_class
from tunelab.errors import UserError
from tunelab.registry import PRUNERS, SAMPLERS
from tunelab.tune.study import make_pruner, make_sampler


@pytest.mark.parametrize("name", PRUNERS.names())
def test_every_registered_pruner_validates_and_builds(name: str) -> None:
    pruner = make_pruner(PrunerConfig(name=name))
    assert isinstance(pruner, optuna_class(PRUNERS, name))
    assert isinstance(pruner, optuna.pruners.BasePruner)


@pytest.mark.parametrize("name", [n for n in SAMPLERS.names() if n not in ("grid", "cmaes")])
def test_every_registered_sampler_validates_and_builds(name: str) -> None:
    sampler = make_sampler(SamplerConfig(name=name), seed=0)
    assert isinstance(sampler, optuna_class(SAMPLERS, name))


def test_aliases_resolve_to_the_registered_name() -> None:
    assert PrunerConfig(name="sha").name == "successive_halving"
    assert SamplerConfig(name="NSGAII").name == "nsga2"


def test_tunelab_defaults_come_from_the_registry() -> None:
    pruner = make_pruner(PrunerConfig(name="median"))
    assert pruner._n_startup_trials == PRUNERS.get("median").defaults["n_startup_trials"] == 5


def test_an_unknown_name_lists_the_registered_ones() -> None:
    with pytest.raises(ValueError, match="successive_halving"):
        PrunerConfig(name="medain_typo")
    with pytest.raises(UserError, match="did you mean 'median'"):
        PRUNERS.get("medain")


def test_cli_help_lists_every_registered_sampler_and_pruner() -> None:
    out = CliRunner().invoke(app, ["tune", "--help"], env={"COLUMNS": "300"}).output
    for name in [*SAMPLERS.names(), *PRUNERS.names()]:
        assert name in out, name
