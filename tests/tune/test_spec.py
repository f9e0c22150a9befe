"""The study file: validation with one-line errors that name the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.tune.conftest import TINY_BASE
from tunelab.config import ParamSpec, load_study_config, study_from_mapping
from tunelab.errors import UserError


def _load(tmp_path: Path, data: dict) -> object:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_study_config(path)


def _error(tmp_path: Path, data: dict) -> str:
    with pytest.raises(UserError) as info:
        _load(tmp_path, data)
    message = str(info.value)
    assert "\n" not in message and "study.yaml" in message
    return message


def test_shorthands_and_type_inference() -> None:
    assert ParamSpec.model_validate([1, 2]).type == "categorical"
    assert ParamSpec.model_validate({"low": 1, "high": 4}).type == "int"
    assert ParamSpec.model_validate({"low": 1, "high": 4.0}).type == "float"
    assert ParamSpec.model_validate({"low": 0.0, "high": 1.0, "step": 0.25}).values() == [0.0, 0.25, 0.5, 0.75, 1.0]
    cfg = study_from_mapping({"objective": "val_f1,n_params", "sampler": "random", "pruner": "hyperband"})
    assert cfg.objective.metrics == ["val_f1", "n_params"]
    assert cfg.objective.resolved("classification")[1] == ["maximize", "minimize"]
    assert cfg.sampler.name == "random" and cfg.pruner.name == "hyperband"
    assert study_from_mapping({}).objective.resolved("seq2seq") == (["val_loss"], ["minimize"])


@pytest.mark.parametrize(
    ("space", "needle"),
    [
        ({"train.lr": {"low": 0.1, "high": 0.01}}, "space.train.lr: low=0.1 > high=0.01"),
        ({"train.lr": {"low": 0.0, "high": 0.01, "log": True}}, "log=true needs low > 0"),
        ({"model.hidden_dim": {"choices": []}}, "choices is empty"),
        ({"model.hidden_dim": {"type": "int", "low": 1.5, "high": 4}}, "integer low"),
        ({"train.lr": {"low": 0.1, "hgh": 0.2}}, "unknown key 'space.train.lr.hgh' (did you mean 'high'?)"),
        ({"model.hiden_dim": [8, 16]}, "unknown config key 'model.hiden_dim' (did you mean 'model.hidden_dim'?)"),
        ({"train.lrr": {"low": 0.1, "high": 0.2}}, "did you mean 'train.lr'?"),
        (
            {"model.num_layers": {"low": 1, "high": 2, "when": {"model.hiden": 8}}},
            "when: 'model.hiden' is not a parameter",
        ),
    ],
)
def test_space_errors_name_the_key(tmp_path: Path, space: dict, needle: str) -> None:
    assert needle in _error(tmp_path, {"base": TINY_BASE, "space": space})


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"sampler": "tpee"}, "unknown sampler 'tpee' (did you mean 'tpe'?)"),
        ({"pruner": {"name": "medain"}}, "unknown pruner 'medain' (did you mean 'median'?)"),
        (
            {"pruner": {"name": "median", "options": {"n_warmup": 3}}},
            "unknown median option 'n_warmup' (did you mean 'n_warmup_steps'?)",
        ),
        ({"objective": "val_f2"}, "unknown metric 'val_f2'"),
        ({"objective": {"metrics": ["val_f1"], "directions": ["maximize", "minimize"]}}, "1 metrics but 2 directions"),
        ({"phases": {"p1": ["train.lrr"]}}, "phases.p1: 'train.lrr' is not in space (did you mean 'train.lr'?)"),
        ({"families": ["gru", "grru"]}, "unknown model family 'grru'"),
        ({"budgett": {"n_trials": 3}}, "unknown key 'budgett' (did you mean 'budget'?)"),
        ({"grids": {"quick": {"train.batch_size": []}}}, "grid 'quick': 'train.batch_size' has no values"),
    ],
)
def test_study_errors_name_the_key(tmp_path: Path, extra: dict, needle: str) -> None:
    data = {"base": TINY_BASE, "space": {"train.lr": {"low": 1e-3, "high": 1e-2}}, **extra}
    assert needle in _error(tmp_path, data)


def test_base_errors_name_the_base_key(tmp_path: Path) -> None:
    message = _error(tmp_path, {"base": {"train": {"lrr": 0.1}}})
    assert "(base)" in message and "train.lrr" in message


def test_a_plain_experiment_file_becomes_the_base_of_a_default_study(tmp_path: Path) -> None:
    path = tmp_path / "my_custom_config.json"
    path.write_text('{"model": {"name": "tcn"}, "train": {"max_epochs": 3}}')
    cfg = load_study_config(path)
    assert cfg.name == "my_custom_config" and cfg.base.model.name == "tcn" and cfg.base.train.max_epochs == 3
    assert cfg.space is None  # tunelab's default space for the family


def test_base_may_be_a_path_relative_to_the_study_file(tmp_path: Path) -> None:
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump({"model": {"name": "lstm"}}))
    cfg = _load(tmp_path, {"base": "exp.yaml", "space": {"train.lr": [0.01]}})
    assert cfg.base.model.name == "lstm"  # type: ignore[attr-defined]
