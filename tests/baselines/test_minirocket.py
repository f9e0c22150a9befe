"""The MiniRocket reference: same splits, trainer metric names, torch only (no aeon), any device."""

from __future__ import annotations

import sys
import time
from typing import Any

import pytest
import torch

import tunelab  # noqa: F401
from tests.helpers import TinySplits, tiny_splits
from tunelab.baselines import fit_minirocket, minirocket_available, reference_row
from tunelab.baselines import transform as mr
from tunelab.baselines.minirocket import to_panel
from tunelab.baselines.ridge import ALPHAS
from tunelab.config import load_config
from tunelab.data.base import DataMeta, SequenceData
from tunelab.errors import UserError


def test_to_panel_zero_pads_every_row_to_one_length() -> None:
    x = torch.ones(2, 5, 3)
    panel = to_panel(x, torch.tensor([5, 2]), 9)
    assert panel.shape == (2, 3, 9) and panel.dtype == torch.float32
    assert panel[0, :, :5].sum() == 15 and panel[0, :, 5:].sum() == 0
    assert panel[1, :, :2].sum() == 6 and panel[1, :, 2:].sum() == 0  # steps past the length are zeroed


def test_reference_row_has_the_trainer_metric_names() -> None:
    row = reference_row(load_config(None, ["seed=3", "device=cpu"]), data=tiny_splits(n=60), n_kernels=500)
    assert row["status"] == "ok" and row["name"] == "MiniRocket"
    assert {"val_acc", "val_f1", "test_acc", "test_f1", "n_params", "fit_seconds", "seconds"} <= set(row)
    assert 0.6 < row["test_acc"] <= 1  # the first channel carries the class: easy for MiniRocket
    assert row["fit_seconds"] > 0 and row["padded_length"] == 16


def test_regression_reports_mse_and_mae() -> None:
    g = torch.Generator().manual_seed(0)

    def part(n: int) -> SequenceData:
        x = torch.randn(n, 12, 2, generator=g)
        lengths = torch.randint(5, 13, (n,), generator=g)
        x = x * (torch.arange(12)[None, :, None] < lengths[:, None, None])
        y = torch.stack([x[:, :, 0].sum(1), x[:, :, 1].abs().sum(1)], 1)  # two targets
        return SequenceData(x, lengths, y, DataMeta("reg", 2, 12, task="regression", n_outputs=2))

    parts = [part(40), part(12), part(12)]
    result = fit_minirocket(TinySplits(*parts, meta=parts[0].meta), n_kernels=500)
    assert {"val_mse", "val_mae", "test_mse", "test_mae"} == set(result.metrics)
    assert result.n_params == result.n_features * 2 + 2  # two outputs' coefficients and intercepts
    assert result.extra["alpha"] > 0 and result.extra["device"] == "cpu"


def test_two_classes_far_above_chance_with_decisions() -> None:
    """Tiny two-class data (a bump early or late in noise): MiniRocket is near perfect, and its
    kept decision values are logits whose argmax is its prediction."""
    g = torch.Generator().manual_seed(1)

    def part(n: int) -> SequenceData:
        y = torch.randint(0, 2, (n,), generator=g)
        x = torch.randn(n, 40, 1, generator=g) * 0.3
        where = torch.where(y == 1, 28, 8)
        x[torch.arange(n), where, 0] += 3.0
        return SequenceData(x, torch.full((n,), 40), y, DataMeta("bump", 1, 40, n_classes=2))

    parts = [part(40), part(30), part(60)]
    result = fit_minirocket(TinySplits(*parts, meta=parts[0].meta), keep_decisions=True)
    assert result.metrics["test_acc"] >= 0.9  # chance is 0.5
    logits = result.extra["decisions"]["test"]
    assert logits.shape == (60, 2) and torch.allclose(logits[:, 0], -logits[:, 1])
    assert float((logits.argmax(1) == parts[2].y).double().mean()) == pytest.approx(result.metrics["test_acc"])


def test_works_without_aeon(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "aeon", None)  # import aeon now fails, as if not installed
    assert minirocket_available()
    row = reference_row(load_config(None, ["device=cpu"]), data=tiny_splits(n=30), n_kernels=500)
    assert row["status"] == "ok"


def test_seq2seq_data_has_no_reference() -> None:
    meta = DataMeta("den", 1, 10, task="seq2seq", n_outputs=1)
    d = SequenceData(torch.randn(4, 10, 1), torch.full((4,), 10), torch.randn(4, 10, 1), meta)
    row = reference_row(load_config(None, []), data=TinySplits(d, d, d, meta))
    assert row["status"] == "not_applicable"
    with pytest.raises(UserError, match="seq2seq"):
        fit_minirocket(TinySplits(d, d, d, meta))


def test_transform_batches_and_seed() -> None:
    x = torch.randn(10, 2, 64, generator=torch.Generator().manual_seed(4))
    params = mr.fit(x, 2000, seed=5)
    assert torch.equal(mr.transform(x, params, batch_size=3), mr.transform(x, params))
    assert torch.equal(mr.fit(x, 2000, seed=5).biases, params.biases)
    assert not torch.equal(mr.fit(x, 2000, seed=6).biases, params.biases)
    assert mr.fit(x, 10, seed=5).n_features == mr.N_KERNELS  # at least one feature per kernel


def japanese_vowels() -> Any:
    from tunelab.data import prepare

    cfg = load_config(None, ["data.name=japanese_vowels"])
    return prepare(cfg.data, cfg.seed)


def test_japanese_vowels_is_fast_and_accurate() -> None:
    splits = japanese_vowels()
    fit_minirocket(splits, n_kernels=84)  # first use of the kernels and LAPACK
    t0 = time.perf_counter()
    result = fit_minirocket(splits)
    assert time.perf_counter() - t0 < 10  # aeon's numba kernels alone once took about that to load
    assert result.n_features == 9996 and result.metrics["test_acc"] > 0.95  # 9 classes


def test_japanese_vowels_accuracy_is_aeons() -> None:
    """Within a point of aeon's MiniRocket + scikit-learn's ridge on the same split (seeds 0-2:
    the random series the biases come from differ between the two)."""
    pytest.importorskip("aeon")
    from aeon.transformations.collection.convolution_based import MiniRocket
    from sklearn.linear_model import RidgeClassifierCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    splits = japanese_vowels()
    length = max(int(d.lengths.max()) for d in (splits.train, splits.test))
    panels = [to_panel(d.x, d.lengths, length).double().numpy() for d in (splits.train, splits.test)]
    ours, theirs = [], []
    for seed in range(3):
        ours.append(fit_minirocket(splits, seed=seed).metrics["test_acc"])
        pipe = make_pipeline(
            MiniRocket(random_state=seed), StandardScaler(with_mean=False), RidgeClassifierCV(alphas=list(ALPHAS))
        )
        pipe.fit(panels[0], splits.train.y.numpy())
        theirs.append(float((pipe.predict(panels[1]) == splits.test.y.numpy()).mean()))
    assert abs(sum(ours) / 3 - sum(theirs) / 3) <= 0.01


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_gives_the_cpu_features_and_fit() -> None:
    x = (torch.randn(64, 3, 200, generator=torch.Generator().manual_seed(6)) * 8).round() / 8  # exact sums
    params = mr.fit(x, 10_000, seed=0)
    assert torch.equal(mr.fit(x.cuda(), 10_000, seed=0).biases.cpu(), params.biases)
    assert torch.equal(mr.transform(x.cuda(), params).cpu(), mr.transform(x, params))
    splits = tiny_splits(n=90)
    on_cpu, on_gpu = fit_minirocket(splits, device="cpu"), fit_minirocket(splits, device="cuda")
    assert on_gpu.extra["device"].startswith("cuda") and on_gpu.extra["alpha"] == on_cpu.extra["alpha"]
    assert on_gpu.metrics == pytest.approx(on_cpu.metrics, abs=0.02)


def test_comparison_lines_say_points_for_accuracy_and_a_relative_change_for_errors() -> None:
    from tunelab.baselines.reference import comparison_lines

    clf = {"name": "MiniRocket", "test_acc": 0.96, "seconds": 0.8}
    ens = {"members": [0, 1, "MiniRocket"], "test_acc": 0.98}
    assert comparison_lines(clf, {"test_acc": 0.973}, ens) == [
        "best tuned model vs MiniRocket: +1.3 points test_acc (0.9730 vs 0.9600; MiniRocket fitted in 0.8 s)",
        "ensemble of 2 + MiniRocket vs MiniRocket: +2.0 points test_acc (0.9800 vs 0.9600)",
    ]
    reg = {"name": "MiniRocket", "test_mse": 0.02, "test_mae": 0.1, "seconds": 1.25}
    assert comparison_lines(reg, {"test_mse": 0.0123}) == [
        "best tuned model vs MiniRocket: 38.5% lower test_mse (0.0123 vs 0.02; MiniRocket fitted in 1.2 s)"
    ]
    assert comparison_lines(reg, {"test_mse": 0.03})[0].startswith(
        "best tuned model vs MiniRocket: 50.0% higher test_mse"
    )
    assert comparison_lines(reg, {"test_mse": 0.064})[0].startswith("best tuned model vs MiniRocket: 3.2x the test_mse")
    assert comparison_lines(reg, {}) == ["MiniRocket reference: test_mse 0.02 (no completed trial to compare)"]
    assert comparison_lines(None, {"test_mse": 0.03}) == []
