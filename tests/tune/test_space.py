"""Search spaces: conditional parameters, families, phases, grids, never mutating the base."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from tests.tune.conftest import TINY_BASE
from tunelab.config import load_study_config, study_from_mapping
from tunelab.errors import UserError
from tunelab.tune.space import FAMILY_PARAM, build_space, grid_size

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _sample(space, n: int = 40, seed: int = 0) -> list[tuple[object, dict]]:  # type: ignore[no-untyped-def]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        cfg, params = space.sample(trial)
        assert trial.params == params  # nothing else was asked of the trial
        out.append((cfg, params))
        study.tell(trial, 0.0)
    return out


def test_conditional_parameters_are_never_sampled_when_inactive() -> None:
    cfg = study_from_mapping(
        {
            "base": {"model": {"name": "gru"}},
            "families": ["gru", "transformer"],
            "space": {
                "model.num_heads": {"choices": [2, 4], "when": {"model.name": "transformer"}},
                "train.optimizer": ["sgd", "adamw"],
                "train.momentum": {"low": 0.5, "high": 0.99, "when": {"train.optimizer": "sgd"}},
                "train.nesterov": {"choices": [False, True], "when": {"train.momentum": [0.9]}},  # never exactly 0.9
                "model.hidden_dim": [8, 16],  # gru only: transformer has no hidden_dim
            },
        }
    )
    space = build_space(cfg)
    seen_sgd = seen_adamw = 0
    for exp, params in _sample(space):
        family = params[FAMILY_PARAM]
        assert exp.model.name == family
        assert ("model.num_heads" in params) == (family == "transformer")
        assert ("model.hidden_dim" in params) == (family == "gru")
        assert ("train.momentum" in params) == (params["train.optimizer"] == "sgd")
        assert "train.nesterov" not in params
        seen_sgd += params["train.optimizer"] == "sgd"
        seen_adamw += params["train.optimizer"] == "adamw"
    assert seen_sgd and seen_adamw


def test_sampling_returns_new_configs_and_never_mutates_the_base() -> None:
    cfg = study_from_mapping({"base": TINY_BASE, "space": {"train.lr": {"low": 1e-3, "high": 1e-2}}})
    space = build_space(cfg)
    before = dict(space.base)
    configs = [c for c, _ in _sample(space, 3)]
    assert space.base == before and cfg.base.train.lr == 3e-3
    assert len({c.train.lr for c in configs}) == 3 and all(c is not cfg.base for c in configs)


def test_family_labels_fix_their_variant_and_drop_fixed_params() -> None:
    cfg = study_from_mapping(
        {
            "families": ["bilstm_standard"],
            "space": {"model.temporal_conv": [False, True], "model.hidden_dim": [8, 16], "model.d_model": [8]},
        }
    )
    space = build_space(cfg)
    for exp, params in _sample(space, 5):
        assert (
            exp.model.name == "bilstm_enhanced"
            and exp.model.temporal_conv is False
            and exp.model.attention_pooling is False
        )
        assert set(params) == {
            "model.hidden_dim"
        }  # temporal_conv is fixed by --standard; d_model is a transformer field
    assert [r.key for r in space.rows()] == ["model.hidden_dim"]


def test_phases_pick_their_parameters_and_keep_fixed_values() -> None:
    cfg = study_from_mapping(
        {
            "base": TINY_BASE,
            "families": ["gru", "lstm"],
            "space": {
                "train.lr": {"low": 1e-3, "high": 1e-2, "log": True},
                "model.hidden_dim": [8, 16],
                "model.dropout": {"low": 0.0, "high": 0.5},
            },
            "phases": {
                "one": ["model.hidden_dim", "train.lr"],
                "two": {"model.num_layers": {"low": 1, "high": 3}},
                "models": ["model.name"],
                "all": ["all", "model.name"],
            },
        }
    )
    one = build_space(cfg, phase="one")
    assert list(one.params) == ["model.hidden_dim", "train.lr"] and not one.searches_family
    two = build_space(cfg, phase="two", fixed={"model.hidden_dim": 16, "train.lr": 0.005})
    for exp, params in _sample(two, 4):
        assert set(params) == {"model.num_layers"} and exp.model.hidden_dim == 16 and exp.train.lr == 0.005
    models = build_space(cfg, phase="models", fixed={"model.hidden_dim": 16})
    assert models.searches_family and not models.params
    assert {p[FAMILY_PARAM] for _, p in _sample(models, 10)} == {"gru", "lstm"}
    everything = build_space(cfg, phase="all")
    assert set(everything.params) == {"train.lr", "model.hidden_dim", "model.dropout"} and everything.searches_family
    with pytest.raises(UserError, match="unknown phase 'tow' \\(did you mean 'two'\\?\\)"):
        build_space(cfg, phase="tow")


def test_locked_keys_are_not_searched() -> None:
    cfg = study_from_mapping({"base": TINY_BASE, "space": {"train.lr": [0.01, 0.02], "train.batch_size": [8, 16]}})
    space = build_space(cfg, locked=frozenset({"train.batch_size"}))
    assert list(space.params) == ["train.lr"]


def test_seed002_grids_have_8_and_864_combinations() -> None:
    cfg = load_study_config(EXAMPLES / "seed002_unet_grid.yaml")
    assert grid_size(cfg.grids["quick"]) == 8 and grid_size(cfg.grids["full"]) == 864
    quick = build_space(cfg, grid="quick")
    assert quick.size() == 8 and len(quick.grid_search_space()["train.lr"]) == 2
    assert build_space(cfg, grid="full").size() == 864
    assert build_space(cfg, grid="quick", locked=frozenset({"train.max_epochs"})).size() == 4
    with pytest.raises(UserError, match="unknown grid 'ful'"):
        build_space(cfg, grid="ful")


def test_discrete_space_size_and_grid_export() -> None:
    cfg = study_from_mapping(
        {"base": TINY_BASE, "space": {"train.lr": [0.01, 0.02], "model.num_layers": {"low": 1, "high": 3}}}
    )
    space = build_space(cfg)
    assert space.size() == 6
    assert space.grid_search_space() == {"train.lr": [0.01, 0.02], "model.num_layers": [1, 2, 3]}
    continuous = build_space(
        study_from_mapping({"base": TINY_BASE, "space": {"train.lr": {"low": 0.01, "high": 0.02}}})
    )
    assert continuous.size() is None
    with pytest.raises(UserError, match="needs discrete values for 'train.lr'"):
        continuous.grid_search_space()


def test_condition_cycles_are_refused() -> None:
    cfg = study_from_mapping(
        {
            "base": TINY_BASE,
            "space": {
                "train.lr": {"choices": [0.1], "when": {"train.clip_norm": 1.0}},
                "train.clip_norm": {"choices": [1.0], "when": {"train.lr": 0.1}},
            },
        }
    )
    with pytest.raises(UserError, match="cycle"):
        build_space(cfg)


def test_default_space_covers_each_family() -> None:
    cfg = study_from_mapping({"families": ["gru", "transformer", "tcn"]})
    space = build_space(cfg)
    by_key = {r.key: r.families for r in space.rows()}
    assert by_key["model.d_model"] == "transformer" and by_key["model.channels"] == "tcn"
    assert "gru" in by_key["model.hidden_dim"] and "transformer" not in by_key["model.hidden_dim"]
    for exp, params in _sample(space, 12):
        assert exp.model.name == params[FAMILY_PARAM]


@pytest.mark.parametrize("families", [["bilstm_standard"], ["gru", "transformer"]])
def test_the_searched_count_is_what_some_trial_samples(families: list[str]) -> None:
    # the tune header said "26 parameters searched" counting e.g. model.num_heads for the standard BiLSTM
    space = build_space(study_from_mapping({"families": families}))
    seen: set[str] = set()
    for _, params in _sample(space, n=150):
        seen |= set(params)
    counted = {key for key in space.params if space.applicable(key)} | ({FAMILY_PARAM} if len(families) > 1 else set())
    assert space.n_searched() == len(counted) and counted <= seen
    if families == ["bilstm_standard"]:  # no attention in the standard model: its heads do nothing
        assert "model.num_heads" in space.params and "model.num_heads" not in counted
        assert all(row.key != "model.num_heads" for row in space.rows())
