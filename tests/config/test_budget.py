"""Data-aware training defaults: budgets in optimizer steps, user-set values kept."""

from __future__ import annotations

import math

import pytest
import torch
from tests.helpers import tiny_splits

from tunelab.budget import MIN_STEPS, DataSize, data_size, resolve_defaults
from tunelab.config import load_config, save_config, validate_config


def _steps(n_train: int, batch: int) -> int:
    return math.ceil(n_train / batch)


def test_forty_series_get_hundreds_of_steps_not_32() -> None:
    # the case: 40 training series at batch 32 stopped after 16 epochs = 32 optimizer steps
    cfg, line = resolve_defaults(load_config(), DataSize(40))
    tc = cfg.train
    per_epoch = _steps(40, tc.batch_size)
    assert tc.batch_size == 8 and per_epoch == 5
    assert tc.early_stopping.patience is not None
    assert tc.early_stopping.patience * per_epoch >= MIN_STEPS  # early stopping cannot end it before this
    assert tc.max_epochs * per_epoch >= MIN_STEPS
    assert tc.plateau_patience * per_epoch >= 100  # the lr is not halved every 25 steps
    assert line.startswith("data-aware defaults") and "batch 8" in line


def test_large_data_keeps_wide_batches_and_few_epochs() -> None:
    cfg, _ = resolve_defaults(load_config(), DataSize(40_000))
    tc = cfg.train
    assert tc.batch_size == 128
    assert tc.early_stopping.patience == 5  # 313 steps an epoch: the epoch floor decides
    assert 20 <= tc.max_epochs <= 60


@pytest.mark.parametrize("n", [40, 300, 5_000])
def test_batch_is_a_power_of_two_between_8_and_128(n: int) -> None:
    batch = resolve_defaults(load_config(), DataSize(n))[0].train.batch_size
    assert 8 <= batch <= 128 and batch & (batch - 1) == 0


def test_values_the_user_set_always_win() -> None:
    given = load_config(
        None,
        [
            "train.batch_size=32",
            "train.max_epochs=30",
            "train.early_stopping.patience=7",
            "train.plateau_patience=3",
            "loss.class_weights=false",
        ],
    )
    cfg, _ = resolve_defaults(given, DataSize(40, [36, 4]))
    tc = cfg.train
    assert (tc.batch_size, tc.max_epochs, tc.early_stopping.patience, tc.plateau_patience) == (32, 30, 7, 3)
    assert cfg.loss.class_weights is False


def test_large_imbalance_turns_on_class_weights() -> None:
    assert resolve_defaults(load_config(), DataSize(400, [360, 40]))[0].loss.class_weights is True
    assert resolve_defaults(load_config(), DataSize(400, [220, 180]))[0].loss.class_weights is False


def test_resolved_config_saves_the_concrete_numbers_and_is_stable() -> None:
    cfg, _ = resolve_defaults(load_config(), DataSize(40))
    again = validate_config(save_config(cfg))
    assert again == cfg
    assert resolve_defaults(again, DataSize(40))[0] == cfg  # resolving twice changes nothing


def test_data_size_reads_the_training_split() -> None:
    splits = tiny_splits(n=30)
    size = data_size(splits)
    assert size.n_train == 30 and sum(size.class_counts) == 30 and len(size.class_counts) == 3


def test_class_weights_are_inverse_square_root_frequencies_with_mean_one() -> None:
    from tunelab.train.losses import class_weights

    y = torch.tensor([0] * 100 + [1] * 25 + [2] * 4)  # class 3 absent
    w = class_weights(y, 4)
    assert w[3] == 0 and float(w[:3].mean()) == pytest.approx(1.0)
    # 100 : 25 : 4 series -> weights 1 : 2 : 5, not 1 : 4 : 25 (a class of 4 would drive the gradient)
    assert (w[:3] / w[0]).tolist() == pytest.approx([1.0, 2.0, 5.0])
