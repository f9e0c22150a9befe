from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from tests.helpers import tiny_splits

import tunelab  # noqa: F401
from tunelab.config import LossConfig, TrainConfig, load_config
from tunelab.data.base import DataMeta, SequenceData
from tunelab.train import BaseCallback, Diverged, fit
from tunelab.train.losses import SequenceLoss
from tunelab.train.optim import LRSchedule
from tunelab.train.trainer import evaluate

FAST = ["model.hidden_dim=8", "model.num_layers=1", "train.batch_size=16", "train.max_epochs=3", "model.dropout=0"]


def test_fit_writes_a_run_directory(tmp_path) -> None:
    cfg = load_config(None, FAST)
    result = fit(cfg, data=tiny_splits(), run_dir=tmp_path)
    assert {p.name for p in tmp_path.iterdir()} >= {"config.json", "metrics.jsonl", "best_model.pt", "summary.json"}
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == result.epochs == 3
    assert {"val_loss", "val_acc", "val_f1", "test_acc", "gap", "test_ece", "test_ece_scaled"} <= set(result.metrics)
    assert 0 <= result.metrics["test_acc"] <= 1 and result.n_params > 0


def test_regression_trains_alike_in_any_target_units_and_reports_errors_in_them(tmp_path) -> None:
    """Targets are z-scored with training statistics: a target in the thousands trains as one near
    1 (before, the head had to reach 5000 from 0), and MSE/MAE come back in the targets' units."""
    import numpy as np

    from tunelab.config import DataConfig
    from tunelab.data import load_dataset, prepare

    raw = load_dataset(DataConfig(name="synthetic_regression", options={"n": 64, "min_len": 8, "max_len": 16}))
    for name, y in (("unit", raw.y), ("big", raw.y * 1000 + 5000)):
        np.savez(tmp_path / f"{name}.npz", x=raw.x.numpy(), lengths=raw.lengths.numpy(), y=y.numpy())
    a, b = (fit(load_config(None, [*FAST, f"data.path={tmp_path / n}.npz"])) for n in ("unit", "big"))
    assert [r.metrics["train_loss"] for r in b.history] == pytest.approx(
        [r.metrics["train_loss"] for r in a.history], rel=1e-4
    )
    assert b.metrics["test_mse"] == pytest.approx(1e6 * a.metrics["test_mse"], rel=1e-3)
    assert b.metrics["val_mae"] == pytest.approx(1e3 * a.metrics["val_mae"], rel=1e-3)
    big = prepare(DataConfig(path=str(tmp_path / "big.npz")), 0)
    test_y = big.test.y * big.target_std + big.target_mean
    assert b.metrics["test_mse"] < 2 * float(test_y.var(0, unbiased=False).mean())  # near the mean, not near 0


def test_same_config_gives_the_same_numbers_on_cpu() -> None:
    cfg = load_config(None, [*FAST, "data.augment.jitter=0.1", "model.dropout=0.2"])
    a = fit(cfg, data=tiny_splits())
    b = fit(cfg, data=tiny_splits())
    assert [r.metrics["train_loss"] for r in a.history] == [r.metrics["train_loss"] for r in b.history]
    assert a.metrics == b.metrics


class _Sabotage(BaseCallback):
    """Wreck the weights after epoch 2, so every later epoch is worse."""

    def on_epoch_end(self, ctx, report) -> None:  # type: ignore[no-untyped-def]
        if report.epoch == 2:
            with torch.no_grad():
                for p in ctx.model.parameters():
                    p.add_(torch.randn_like(p) * 5)


def test_early_stopping_restores_the_best_weights() -> None:
    cfg = load_config(
        None, [*FAST, "train.max_epochs=20", "train.early_stopping.patience=2", "train.lr=1e-9", "train.schedule=none"]
    )
    splits = tiny_splits()
    result = fit(cfg, data=splits, callbacks=[_Sabotage()])
    assert result.stop_reason == "early_stopping"
    assert result.best_epoch <= 2 and result.epochs == result.best_epoch + 2
    assert result.metrics["val_loss"] == pytest.approx(
        result.history[result.best_epoch - 1].metrics["val_loss"], rel=1e-5
    )


def test_results_unchanged_by_extra_padding() -> None:
    cfg = load_config(None, FAST)
    splits = tiny_splits()
    padded = tiny_splits()
    for part in ("train", "val", "test"):
        d: SequenceData = getattr(padded, part)
        d.x = F.pad(d.x, (0, 0, 0, 9))
    a, b = fit(cfg, data=splits), fit(cfg, data=padded)
    for k in ("val_loss", "test_loss", "test_acc"):
        assert a.metrics[k] == pytest.approx(b.metrics[k], rel=1e-4, abs=1e-6)


def test_nan_in_data_is_reported_as_divergence() -> None:
    splits = tiny_splits()
    splits.train.x[0, 0, 0] = float("nan")
    with pytest.raises(Diverged, match="epoch 1"):
        fit(load_config(None, FAST), data=splits)


def test_grad_accumulation_and_fixed_steps_per_epoch() -> None:
    seen = []

    class Count(BaseCallback):
        def on_epoch_end(self, ctx, report) -> None:  # type: ignore[no-untyped-def]
            seen.append(report.metrics["clip_frac"])

    cfg = load_config(None, [*FAST, "train.steps_per_epoch=5", "train.grad_accum=2", "train.clip_norm=1e-6"])
    fit(cfg, data=tiny_splits(), callbacks=[Count()])
    assert seen == [1.0, 1.0, 1.0]  # every step clipped at a tiny norm: the fraction is exact


def test_body_and_head_learning_rates() -> None:
    cfg = load_config(None, [*FAST, "train.lr=1e-3", "train.body_lr_scale=2.0", "train.schedule=none"])
    result = fit(cfg, data=tiny_splits())
    assert result.history[0].metrics["lr/head"] == pytest.approx(1e-3)
    assert result.history[0].metrics["lr/body"] == pytest.approx(2e-3)


def _curve(**kw: object) -> list[float]:
    cfg = TrainConfig(max_epochs=10, lr=1.0, min_lr=1e-3, **kw)  # type: ignore[arg-type]
    sched = LRSchedule(cfg, steps_per_epoch=10)
    return [sched.multiplier(s) for s in range(100)]


def test_cosine_with_warmup_curve() -> None:
    lr = _curve(schedule="cosine", warmup_epochs=2)
    assert lr[0] == pytest.approx(1 / 20) and lr[19] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(lr[:19], lr[1:20], strict=True))  # rises during warmup
    assert all(a >= b for a, b in zip(lr[20:-1], lr[21:], strict=True))  # then only falls
    assert lr[-1] == pytest.approx(1e-3, abs=1e-3)


def test_onecycle_curve() -> None:
    lr = _curve(schedule="onecycle")
    assert lr[0] == pytest.approx(1 / 25)
    assert max(lr) == pytest.approx(1.0) and lr.index(max(lr)) == 30
    assert lr[-1] < 1e-3


def test_none_is_flat_and_plateau_reduces_after_patience() -> None:
    assert set(_curve(schedule="none")) == {1.0}
    cfg = TrainConfig(schedule="plateau", plateau_patience=2, plateau_factor=0.5, lr=1.0, min_lr=0.2)
    sched = LRSchedule(cfg, steps_per_epoch=1)
    factors = []
    for loss in [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]:
        sched.on_epoch_end(loss)
        factors.append(sched.plateau)
    assert factors[:4] == [1.0, 1.0, 1.0, 1.0] and factors[4] == 0.5  # 3 bad epochs > patience 2
    opt = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "base_lr": 1.0, "lr": 1.0}])
    sched.apply(opt, 0)
    assert opt.param_groups[0]["lr"] == pytest.approx(max(sched.plateau, 0.2))


META = DataMeta("m", 2, 5, n_classes=4)


def test_focal_loss_equals_cross_entropy_at_gamma_zero() -> None:
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(32, 4, generator=g), torch.randint(0, 4, (32,), generator=g)
    focal0 = SequenceLoss(LossConfig(name="focal", focal_gamma=0.0, label_smoothing=0.1), META)
    ce = F.cross_entropy(logits, y, label_smoothing=0.1)
    assert focal0(logits, y) == pytest.approx(float(ce), rel=1e-6)
    focal2 = SequenceLoss(LossConfig(name="focal", focal_gamma=2.0), META)
    assert float(focal2(logits, y)) < float(F.cross_entropy(logits, y))
    weights = torch.tensor([1.0, 2.0, 0.5, 1.0])
    w0 = SequenceLoss(LossConfig(name="focal", focal_gamma=0.0), META, weights)
    assert w0(logits, y) == pytest.approx(float(F.cross_entropy(logits, y, weight=weights)), rel=1e-6)


@pytest.mark.parametrize("gamma", [0.1, 0.3, 0.5])
def test_focal_loss_has_finite_gradients_when_the_true_class_is_certain(gamma: float) -> None:
    # (1 - p)^gamma has an infinite slope at p = 1 for 0 < gamma < 1; a saturated logit gave NaN
    logits = torch.tensor([[60.0, 0.0, 0.0, 0.0], [0.5, 0.2, -0.1, 0.0]], requires_grad=True)
    y = torch.tensor([0, 1])
    loss = SequenceLoss(LossConfig(name="focal", focal_gamma=gamma), META)(logits, y)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    # away from p = 1 the value is the plain formula
    g = torch.Generator().manual_seed(1)
    x, t = torch.randn(16, 4, generator=g), torch.randint(0, 4, (16,), generator=g)
    p_true = x.softmax(-1).gather(1, t[:, None]).squeeze(1)
    plain = ((1 - p_true) ** gamma * F.cross_entropy(x, t, reduction="none")).mean()
    assert float(SequenceLoss(LossConfig(name="focal", focal_gamma=gamma), META)(x, t)) == pytest.approx(
        float(plain), rel=1e-5
    )


def test_confidence_penalty_lowers_loss_by_the_entropy() -> None:
    logits, y = torch.randn(8, 4), torch.randint(0, 4, (8,))
    base = SequenceLoss(LossConfig(), META)(logits, y)
    pen = SequenceLoss(LossConfig(confidence_penalty=0.5), META)(logits, y)
    p = logits.softmax(-1)
    entropy = -(p * p.log()).sum(-1).mean()
    assert float(base - pen) == pytest.approx(0.5 * float(entropy), rel=1e-5)


def test_temperature_scaling_does_not_worsen_validation_nll() -> None:
    cfg = load_config(None, [*FAST, "train.max_epochs=8", "train.lr=0.03"])
    result = fit(cfg, data=tiny_splits())
    assert result.temperature > 0 and math.isfinite(result.metrics["test_ece_scaled"])


def test_temperature_scaling_off_keeps_the_logits_as_trained() -> None:
    cfg = load_config(None, [*FAST, "loss.temperature_scaling=false"])
    result = fit(cfg, data=tiny_splits())
    assert result.temperature == 1.0 and "test_ece_scaled" not in result.metrics
    assert math.isfinite(result.metrics["test_ece"])


def test_evaluate_on_empty_split_is_empty() -> None:
    splits = tiny_splits()
    empty = splits.test.subset(torch.zeros(0, dtype=torch.long))
    cfg = load_config(None, FAST)
    result = fit(cfg, data=splits)
    metrics, _ = evaluate(result.model, empty, SequenceLoss(cfg.loss, splits.meta))
    assert metrics == {}


def test_fitted_temperature_minimises_validation_nll() -> None:
    from tunelab.train.metrics import TEMPERATURE_RANGE, fit_temperature

    torch.manual_seed(0)
    y = torch.randint(0, 5, (300,))
    logits = 3 * torch.randn(300, 5) + 2.0 * torch.nn.functional.one_hot(y, 5)  # overconfident, mostly right
    t = fit_temperature(logits, y)
    grid = torch.logspace(-1, 1.5, 2001)
    nll = torch.stack([torch.nn.functional.cross_entropy(logits / g, y) for g in grid])
    best = float(grid[nll.argmin()])
    assert t == pytest.approx(best, rel=3e-3)
    assert float(torch.nn.functional.cross_entropy(logits / t, y)) <= float(nll.min()) + 1e-6
    # every prediction right with a margin: the NLL falls as T -> 0; T goes down until it is 0 to rounding
    separable = 5 * torch.nn.functional.one_hot(y, 5).float()
    t_sep = fit_temperature(separable, y)
    assert TEMPERATURE_RANGE[0] <= t_sep < 0.2
    assert float(torch.nn.functional.cross_entropy(separable.double() / t_sep, y)) < 1e-12
    assert fit_temperature(torch.zeros(4, 3), torch.tensor([0, 1, 2, 0])) == pytest.approx(1.0)  # flat: no change


def test_training_on_a_cpu_flushes_denormal_floats() -> None:
    """Vanishing gradients of long recurrences reach denormals, whose CPU arithmetic crawls."""
    torch.set_flush_denormal(False)
    tiny = torch.tensor([1e-39])
    assert float(tiny * 1.0) != 0.0
    fit(load_config(None, [*FAST, "train.max_epochs=1", "device=cpu"]), data=tiny_splits())
    assert float(tiny * 1.0) == 0.0


def test_denoising_trains_alike_in_any_signal_units_and_reports_errors_in_them(tmp_path) -> None:
    """Seq2seq targets are scaled per channel like regression ones: MSE/MAE come back in the
    signal's own units, and the SNRs do not depend on them."""
    import numpy as np

    from tunelab.config import DataConfig
    from tunelab.data import load_dataset

    raw = load_dataset(DataConfig(name="synthetic_gestures", options={"n": 48, "min_len": 8, "max_len": 16}))
    for name, k in (("unit", 1.0), ("big", 1000.0)):
        np.savez(tmp_path / f"{name}.npz", x=(raw.x * k).numpy(), lengths=raw.lengths.numpy(), y=raw.y.numpy())
    noise = ["data.noise.kind=white", "data.noise.snr_db=5"]
    a, b = (fit(load_config(None, [*FAST, *noise, f"data.path={tmp_path / n}.npz"])) for n in ("unit", "big"))
    assert [r.metrics["train_loss"] for r in b.history] == pytest.approx(
        [r.metrics["train_loss"] for r in a.history], rel=1e-4
    )
    assert b.metrics["test_mse"] == pytest.approx(1e6 * a.metrics["test_mse"], rel=1e-3)
    assert b.metrics["test_mae"] == pytest.approx(1e3 * a.metrics["test_mae"], rel=1e-3)
    assert b.metrics["test_snr_db"] == pytest.approx(a.metrics["test_snr_db"], abs=1e-3)
