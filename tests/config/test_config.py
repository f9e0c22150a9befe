from __future__ import annotations

import pytest

import tunelab  # noqa: F401  (fills registries)
from tunelab.config import (
    ExperimentConfig,
    apply_overrides,
    load_config,
    pack_key,
    parse_value,
    save_config,
    validate_config,
)
from tunelab.errors import UserError


def test_dotted_overrides_reach_nested_sections() -> None:
    cfg = load_config(
        None, ["train.lr=3e-4", "model.hidden_dim=64", "train.early_stopping.patience=3", "loss.name=focal"]
    )
    assert cfg.train.lr == 3e-4
    assert cfg.model.hidden_dim == 64  # type: ignore[attr-defined]
    assert cfg.train.early_stopping.patience == 3
    assert cfg.loss.name == "focal"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.lrr=1", "unknown key 'train.lrr' (did you mean 'lr'?)"),
        ("model.hiden_dim=8", "did you mean 'hidden_dim'"),
        ("trian.lr=1", "did you mean 'train'"),
    ],
)
def test_unknown_keys_suggest_the_nearest(override: str, expected: str) -> None:
    with pytest.raises(UserError) as err:
        load_config(None, [override])
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_wrong_type_names_key_and_value() -> None:
    with pytest.raises(UserError) as err:
        load_config(None, ["train.batch_size=many"])
    assert "train.batch_size" in str(err.value) and "many" in str(err.value)


def test_unknown_model_is_named_with_choices() -> None:
    with pytest.raises(UserError) as err:
        load_config(None, ["model.name=gruu"])
    assert "gruu" in str(err.value) and "did you mean 'gru'" in str(err.value)


def test_switching_family_drops_keys_of_the_old_family() -> None:
    cfg = load_config(None, ["model.name=lstm"])
    assert cfg.model.name == "lstm"


def test_round_trip_gives_an_equal_object(tmp_path) -> None:
    cfg = load_config(
        None, ["model.name=lstm", "model.bidirectional=true", "train.schedule=cosine", "data.augment.jitter=0.1"]
    )
    again = validate_config(save_config(cfg))
    assert again == cfg
    path = tmp_path / "c.yaml"
    import yaml

    path.write_text(yaml.safe_dump(save_config(cfg)))
    assert load_config(path) == cfg


def test_yaml_errors_name_the_file_and_line(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: [1,\n")
    with pytest.raises(UserError) as err:
        load_config(bad)
    assert "bad.yaml" in str(err.value) and "line" in str(err.value)
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_parse_value_understands_scientific_notation_and_booleans() -> None:
    assert parse_value("3e-4") == 3e-4 and parse_value("10") == 10 and parse_value("true") is True
    assert parse_value("null") is None and parse_value("[1, 2]") == [1, 2] and parse_value("adamw") == "adamw"


def test_overrides_do_not_mutate_input() -> None:
    data = {"train": {"lr": 1.0}}
    out = apply_overrides(data, ["train.lr=2"])
    assert data == {"train": {"lr": 1.0}} and out["train"]["lr"] == 2


def test_pack_key_holds_shape_not_value_parameters() -> None:
    a = load_config(None, ["train.lr=1e-3", "model.dropout=0.1"])
    b = load_config(None, ["train.lr=1e-2", "model.dropout=0.3"])
    c = load_config(None, ["model.hidden_dim=7"])
    assert pack_key(a) == pack_key(b) != pack_key(c)


def test_defaults_validate() -> None:
    assert ExperimentConfig().model.name == "gru"
