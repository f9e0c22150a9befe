"""prepare(): official or stratified splits, seeded; train-only normalisation; padding stays zero; classes filter."""

from __future__ import annotations

import torch

from tunelab.config import DataConfig, NoiseConfig
from tunelab.data import load_dataset, prepare
from tunelab.data.splits import keep_top_classes

GESTURES = {"n": 240, "classes": 4, "channels": 2, "min_len": 5, "max_len": 20}


def rows(data) -> set[bytes]:
    """Identify rows by content, to compare splits across calls."""
    return {bytes(data.x[i].numpy().tobytes()) for i in range(len(data))}


def test_official_split_is_kept() -> None:
    s = prepare(DataConfig(), seed=0)
    assert s.official_split
    assert len(s.test) == 370 and len(s.train) + len(s.val) == 270
    assert torch.bincount(s.val.y, minlength=9).tolist() == [6] * 9  # 20% of 30 per speaker, stratified


def test_splits_stratified_deterministic_and_disjoint() -> None:
    cfg = DataConfig(name="synthetic_gestures", options=GESTURES, val_fraction=0.25, test_fraction=0.2, normalize=False)
    a, b, c = prepare(cfg, seed=1), prepare(cfg, seed=1), prepare(cfg, seed=2)
    assert not a.official_split
    for part in ("train", "val", "test"):
        assert torch.equal(getattr(a, part).x, getattr(b, part).x)  # same seed, same splits
    assert rows(a.val) != rows(c.val)  # another seed draws another validation split
    assert rows(a.test) == rows(c.test)  # ... but the held-out test rows never move
    assert len(rows(a.train) | rows(a.val) | rows(a.test)) == GESTURES["n"]  # disjoint, complete
    for part in (a.train, a.val, a.test):
        counts = torch.bincount(part.y, minlength=4)
        assert counts.min() > 0 and (counts.max() - counts.min()) <= 1  # 60 per class → equal shares
    assert len(a.test) == 48 and len(a.val) == 48


def test_normalisation_uses_train_statistics_over_valid_steps() -> None:
    cfg = DataConfig(name="synthetic_gestures", options=GESTURES)
    s = prepare(cfg, seed=0)
    raw = prepare(cfg.model_copy(update={"normalize": False}), seed=0)
    m = s.train.mask().unsqueeze(-1)
    valid = s.train.x[m.expand_as(s.train.x)].view(-1, 2)
    torch.testing.assert_close(valid.mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(valid.std(0, unbiased=False), torch.ones(2), atol=1e-4, rtol=0)
    raw_valid = raw.train.x[raw.train.mask()]  # statistics come from train rows only
    torch.testing.assert_close(s.mean, raw_valid.mean(0), atol=1e-5, rtol=0)
    for part, ref in ((s.val, raw.val), (s.test, raw.test)):  # val/test use the same (train) numbers
        vm = part.mask()
        torch.testing.assert_close(part.x[vm], (ref.x[vm] - s.mean) / s.std)
        pad = part.x[~vm]
        assert pad.numel() > 0 and torch.equal(pad, torch.zeros_like(pad))  # exactly +0.0 on padding
        assert not torch.signbit(pad).any()


def test_seq2seq_denoising_scales_input_and_target_alike() -> None:
    cfg = DataConfig(name="synthetic_gestures", options=GESTURES, noise=NoiseConfig(kind="white", snr_db=6.0))
    s = prepare(cfg, seed=0)
    assert s.meta.task == "seq2seq" and s.meta.out_dim == 2
    assert s.target_std is not None and torch.equal(s.target_std, s.std) and torch.equal(s.mean, torch.zeros(2))
    from tunelab.data import measure_snr_db

    snr = measure_snr_db(s.test.y, s.test.x, s.test.lengths)  # scale-only: the SNR survives normalising
    torch.testing.assert_close(snr, torch.full_like(snr, 6.0), atol=1e-3, rtol=0)
    pad = ~s.train.mask()
    assert torch.equal(s.train.y[pad], torch.zeros_like(s.train.y[pad]))


def test_regression_targets_get_a_z_score_from_the_training_rows_and_keep_their_scale() -> None:
    cfg = DataConfig(name="synthetic_regression", options={"n": 60})
    s, raw = prepare(cfg, seed=0), load_dataset(cfg)
    assert s.meta.task == "regression" and s.target_mean is not None and s.target_std is not None
    torch.testing.assert_close(s.train.y.mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(s.train.y.std(0, unbiased=False), torch.ones(2), atol=1e-5, rtol=0)
    assert all(p.y_scale is not None and torch.equal(p.y_scale, s.target_std) for p in (s.train, s.val, s.test))
    # every row, mapped back, is a row of the data in its own units
    back = torch.cat([p.y for p in (s.train, s.val, s.test)]) * s.target_std + s.target_mean
    torch.testing.assert_close(back.sort(0).values, raw.y.sort(0).values, atol=1e-4, rtol=1e-5)
    off = prepare(DataConfig(name="synthetic_regression", options={"n": 60}, normalize=False), seed=0)
    assert off.target_mean is None and off.train.y_scale is None
    assert off.train.y.min() >= raw.y.min() and off.train.y.max() <= raw.y.max()


def test_classes_filter_keeps_most_frequent() -> None:
    d = load_dataset(DataConfig(name="synthetic_gestures", options={"n": 100, "classes": 5}))
    counts = torch.bincount(d.y, minlength=5)
    y = d.y.clone()
    y[(y == 1) & (torch.arange(len(y)) % 2 == 0)] = 3  # class 1 now rarest, class 3 most frequent
    d.y = y
    kept = keep_top_classes(d, 3)
    counts = torch.bincount(y, minlength=5)
    top = sorted(sorted(range(5), key=lambda c: (-int(counts[c]), c))[:3])
    assert kept.meta.class_names == tuple(f"gesture_{c}" for c in top)
    assert kept.meta.n_classes == 3 and set(kept.y.tolist()) == {0, 1, 2}
    assert len(kept) == int(counts[top].sum())
    jv = load_dataset(DataConfig(classes=4))
    assert jv.meta.n_classes == 4 and jv.split is not None
    assert prepare(DataConfig(classes=4), seed=0).meta.out_dim == 4
