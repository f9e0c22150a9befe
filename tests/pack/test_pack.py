"""Trial packs: a pack trains each member exactly as its solo run, members stop alone, and an
extracted member is an ordinary checkpoint."""

from __future__ import annotations

import copy
import json

import optuna
import pytest
import torch

import tunelab  # noqa: F401  (registers the model families)
from tests.helpers import builtin_families, strict_fp32, tiny_classification, tiny_model_values, tiny_splits  # noqa: F401
from tunelab.config import load_config, validate_config
from tunelab.models import build_model
from tunelab.pack import NotPackable, fit_pack, pack_group_key, pack_models, packable
from tunelab.pack.layers import PackedDropout
from tunelab.results.io import save_checkpoint
from tunelab.train import BaseCallback, fit
from tunelab.train.checkpoint import load_model
from tunelab.train.losses import build_loss
from tunelab.train.trainer import evaluate

BASE = ["model.hidden_dim=6", "model.num_layers=2", "model.dropout=0", "train.batch_size=16", "train.max_epochs=2"]
# value parameters that differ between members: optimizer kind, lr, decay, clipping, schedule, loss
VALUES = [
    ["train.lr=1e-3"],
    ["train.lr=3e-3", "train.optimizer=adam", "train.weight_decay=1e-2"],
    ["train.lr=1e-2", "train.clip_norm=0.1", "loss.label_smoothing=0.1"],
    ["train.schedule=cosine", "train.warmup_epochs=1", "train.body_lr_scale=0.3", "loss.name=focal", "train.beta1=0.8"],
]


def _splits():  # type: ignore[no-untyped-def]
    return tiny_splits(n=48)


def _losses(result) -> list[float]:  # type: ignore[no-untyped-def]
    return [r.metrics[k] for r in result.history for k in ("train_loss", "val_loss")]


def _close(a: list[float], b: list[float], rel: float = 1e-4) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= rel * abs(x) for x, y in zip(a, b, strict=True))


def test_a_pack_of_four_equals_four_solo_runs() -> None:
    cfgs = [load_config(None, BASE + v) for v in VALUES]
    packed = fit_pack(cfgs, _splits())
    for cfg, member in zip(cfgs, packed, strict=True):
        solo = fit(cfg, data=_splits())
        assert _close(_losses(solo), _losses(member)), (cfg.train, _losses(solo), _losses(member))
        assert member.best_epoch == solo.best_epoch and member.stop_reason == solo.stop_reason
        assert member.metrics["test_acc"] == pytest.approx(solo.metrics["test_acc"])
        assert member.history[-1].metrics["lr/body"] == pytest.approx(solo.history[-1].metrics["lr/body"])
    assert [r.history[0].member for r in packed] == [0, 1, 2, 3]


@pytest.mark.parametrize("family", ["resnet", "inception_time"])
def test_a_batchnorm_pack_trains_like_its_members_alone(family: str) -> None:
    """Per-member BatchNorm statistics and running estimates: a trained pack equals the solo runs."""
    shape = [f"model.{k}={v}" for k, v in _tiny(family).items()]
    base = [f"model.name={family}", *shape, "train.batch_size=16", "train.max_epochs=2"]
    cfgs = [load_config(None, base + v) for v in VALUES[:2]]
    packed = fit_pack(cfgs, _splits())
    for cfg, member in zip(cfgs, packed, strict=True):
        solo = fit(cfg, data=_splits())
        assert _close(_losses(solo), _losses(member)), (cfg.train, _losses(solo), _losses(member))
        assert member.metrics["test_acc"] == pytest.approx(solo.metrics["test_acc"])


class _PruneAt(BaseCallback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, ctx, report) -> None:  # type: ignore[no-untyped-def]
        if report.epoch == self.epoch:
            raise optuna.TrialPruned(f"pruned at epoch {report.epoch}")


@pytest.mark.parametrize("compact_below", [0.5, 1.0])
def test_a_pruned_member_stops_alone_and_changes_no_other(compact_below: float) -> None:
    cfgs = [load_config(None, [*BASE, "train.max_epochs=3", *v]) for v in VALUES[:3]]
    free = fit_pack(cfgs, _splits())
    pruned = fit_pack(cfgs, _splits(), [[], [_PruneAt(1)], []], compact_below=compact_below)  # 1.0: compacts at once
    assert pruned[1].stop_reason == "pruned" and pruned[1].epochs == 1
    assert isinstance(pruned[1].extra["exception"], optuna.TrialPruned)
    for i in (0, 2):
        assert _close(_losses(free[i]), _losses(pruned[i]), rel=1e-6)
        assert pruned[i].epochs == 3


def test_members_stop_at_their_own_max_epochs() -> None:
    cfgs = [
        load_config(None, [*BASE, "train.max_epochs=1"]),
        load_config(None, [*BASE, "train.max_epochs=3", "train.lr=2e-3"]),
    ]
    short, long = fit_pack(cfgs, _splits())
    assert (short.epochs, long.epochs) == (1, 3)
    assert short.stop_reason == long.stop_reason == "max_epochs"


def test_an_extracted_member_is_an_ordinary_checkpoint(tmp_path) -> None:
    cfgs = [load_config(None, BASE + v) for v in VALUES[:2]]
    splits = _splits()
    results = fit_pack(cfgs, splits, run_dirs=[tmp_path / "a", tmp_path / "b"])
    member, cfg = results[1], cfgs[1]
    path = save_checkpoint(tmp_path / "member.pt", member.model.state_dict(), cfg.model_dump(mode="json"))
    model, loaded_cfg, _ = load_model(path, splits.meta)
    loss_fn = build_loss(loaded_cfg.loss, splits.meta, splits.train.y)
    val, _ = evaluate(model, splits.val, loss_fn)
    test, _ = evaluate(model, splits.test, loss_fn)
    assert val["loss"] == pytest.approx(member.metrics["val_loss"], rel=1e-6)
    assert test["acc"] == pytest.approx(member.metrics["test_acc"])
    # the pack's own per-epoch report of the best epoch says the same
    assert val["loss"] == pytest.approx(member.history[member.best_epoch - 1].metrics["val_loss"], rel=1e-5)
    assert (tmp_path / "b" / "best_model.pt").is_file() and (tmp_path / "b" / "metrics.jsonl").read_text().count(
        "\n"
    ) == member.epochs


#: sharper tiny shapes for some families (each family starts from its registry defaults, shrunk)
SETTINGS = {
    "gru": {"hidden_dim": 6, "bidirectional": True, "layer_norm": True, "pooling": "attention"},
    "lstm": {"hidden_dim": 6},
    "conv_gru": {"hidden_dim": 6, "conv_channels": 4},
    "bilstm_enhanced": {"hidden_dim": 4, "num_heads": 2},
    "tcn": {"channels": 6, "num_blocks": 2},
    "transformer": {"d_model": 8, "num_heads": 2, "ff_dim": 8},
    "unet1d": {"depth": 2, "base_channels": 4},
    "fcn": {"width": 4},
    "resnet": {"base_filters": 4, "res_blocks": 2},
    "inception_time": {"nb_filters": 2, "num_modules": 3, "bottleneck": 2, "longest_kernel": 8},
}


FAMILIES = builtin_families()  # every family tunelab ships, with no list to keep up to date


def _tiny(family: str) -> dict[str, object]:
    return {
        **tiny_model_values(family, sizes={"hidden_dim": 6, "channels": 6, "d_model": 8}),
        **SETTINGS.get(family, {}),
    }


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_packs(family: str) -> None:
    data = tiny_classification(10, 0, t=12)
    cfg = validate_config({"model": {"name": family, **_tiny(family)}})
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(build_model(cfg.model, data.meta).eval())
    packed = pack_models(models).eval()
    with torch.no_grad():
        out = packed(data.x, data.lengths)
        solo = torch.stack([m(data.x, data.lengths) for m in models])
    torch.testing.assert_close(out, solo, rtol=1e-5, atol=1e-5)
    state = packed.member_state_dict(2)
    assert all(torch.equal(state[n], v) for n, v in models[2].state_dict().items())
    packed.load_member(0, models[1].state_dict())  # and back in
    packed.select_(torch.tensor([0, 2]))  # compaction keeps members in order
    with torch.no_grad():
        torch.testing.assert_close(packed(data.x, data.lengths), solo[[1, 2]], rtol=1e-5, atol=1e-5)
    out = packed.train()(data.x, data.lengths)
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in packed.parameters())


@pytest.mark.parametrize("family", ["fcn", "resnet", "inception_time"])
def test_batchnorm_statistics_are_per_member_in_training(family: str) -> None:
    """In training mode each member normalises by its own batch statistics over valid steps
    and keeps its own running estimates: the pack's outputs and buffers equal the solo models'."""
    data = tiny_classification(10, 0, t=12)
    cfg = validate_config({"model": {"name": family, **_tiny(family)}})
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(build_model(cfg.model, data.meta).train())
    packed = pack_models(models).train()
    with torch.no_grad():
        solo = torch.stack([m(data.x, data.lengths) for m in models])
        out = packed(data.x, data.lengths)
    torch.testing.assert_close(out, solo, rtol=1e-4, atol=1e-4)
    for k, m in enumerate(models):
        state = packed.member_state_dict(k)
        for name, v in m.state_dict().items():
            torch.testing.assert_close(state[name], v, rtol=1e-5, atol=1e-6)


def test_a_layer_that_cannot_stack_is_refused_clearly() -> None:
    data = tiny_classification(4, 0, t=8)
    cfg = validate_config({"model": {"name": "transformer", "d_model": 8, "num_heads": 2, "positional": "learned"}})
    assert not packable(cfg, data.meta)
    with pytest.raises(NotPackable, match="own parameters"):
        pack_models([build_model(cfg.model, data.meta), build_model(cfg.model, data.meta)])


def test_dropout_rate_is_per_member() -> None:
    drop = PackedDropout([0.0, 0.5]).train()
    x = torch.ones(2 * 4000, 3)
    y = drop(x).view(2, 4000, 3)
    assert torch.equal(y[0], torch.ones(4000, 3))
    assert 0.45 < (y[1] == 0).float().mean() < 0.55 and set(y[1].unique().tolist()) == {0.0, 2.0}


def test_group_key_separates_shapes_not_values() -> None:
    a = load_config(None, BASE)
    assert pack_group_key(a) == pack_group_key(
        load_config(None, [*BASE, "train.lr=0.1", "model.dropout=0.3", "loss.label_smoothing=0.2"])
    )
    other = load_config(None, [*BASE, "model.hidden_dim=7"])
    assert pack_group_key(a) != pack_group_key(other)
    assert pack_group_key(a) != pack_group_key(load_config(None, [*BASE, "train.optimizer=sgd"]))
    with pytest.raises(ValueError, match="pack group key"):
        fit_pack([a, other], _splits())


def test_a_pack_of_one_is_the_ordinary_run() -> None:
    cfg = load_config(None, [*BASE, "train.optimizer=sgd", "train.nesterov=true", "train.max_epochs=2"])
    (member,) = fit_pack([copy.deepcopy(cfg)], _splits())
    assert _losses(fit(cfg, data=_splits())) == _losses(member)  # the same loop and engine: exactly equal


CUDA = pytest.param(
    "cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
)


@pytest.mark.usefixtures("strict_fp32")
@pytest.mark.parametrize("device", ["cpu", CUDA])
@pytest.mark.parametrize("cell", [torch.nn.GRU, torch.nn.LSTM])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_stacked_recurrence_matches_solo_layers_and_their_gradients(
    cell: type, bidirectional: bool, device: str
) -> None:
    """The hand-written backward of the stacked GRU/LSTM gives autograd's gradients of K solo
    layers run over packed sequences (outputs, input gradients and every weight gradient), in
    strict fp32 on both paths (no TF32 anywhere; see ``strict_fp32``)."""
    from tunelab.pack.layers import PackedRNN

    torch.manual_seed(0)
    k, b, t, d, h = 3, 4, 7, 5, 6
    solos = [cell(d, h, batch_first=True, bidirectional=bidirectional).to(device) for _ in range(k)]
    stacked = PackedRNN(copy.deepcopy(solos))
    x = torch.randn(k, b, t, d, device=device)
    lengths = torch.tensor([7, 3, 5, 1], device=device)
    weight = torch.randn(k, b, t, h * (2 if bidirectional else 1), device=device)  # weighs every output
    xs = x.clone().requires_grad_(True)
    out = stacked.run(xs.reshape(k * b, t, d), lengths.repeat(k)).view(k, b, t, -1)
    (out * weight).sum().backward()
    for i, solo in enumerate(solos):
        xi = x[i].clone().requires_grad_(True)
        packed = torch.nn.utils.rnn.pack_padded_sequence(xi, lengths.cpu(), batch_first=True, enforce_sorted=False)
        ref, _ = torch.nn.utils.rnn.pad_packed_sequence(solo(packed)[0], batch_first=True, total_length=t)
        (ref * weight[i]).sum().backward()
        torch.testing.assert_close(out[i], ref, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(xs.grad[i], xi.grad, rtol=1e-4, atol=1e-6)
        for name, p in solo.named_parameters():
            torch.testing.assert_close(stacked._param(name).grad[i], p.grad, rtol=1e-4, atol=1e-6)


def test_packed_focal_loss_has_finite_gradients_and_matches_solo() -> None:
    from tunelab.config import LossConfig
    from tunelab.data.base import DataMeta
    from tunelab.pack.losses import PackedLoss
    from tunelab.train.losses import SequenceLoss

    meta = DataMeta("m", 2, 5, n_classes=4)
    cfgs = [LossConfig(name="focal", focal_gamma=g) for g in (0.0, 0.3, 2.0)]
    y = torch.tensor([0, 1])
    base = torch.tensor([[60.0, 0.0, 0.0, 0.0], [0.5, 0.2, -0.1, 0.0]])  # sample 0 is certain: p_true -> 1
    logits = base.expand(3, 2, 4).clone().requires_grad_(True)
    packed = PackedLoss(cfgs, meta, y)(logits, y)
    packed.sum().backward()
    assert torch.isfinite(packed).all() and torch.isfinite(logits.grad).all()
    for k, cfg in enumerate(cfgs):
        assert float(packed[k].detach()) == pytest.approx(float(SequenceLoss(cfg, meta)(base, y)), rel=1e-5, abs=1e-8)


def test_buffered_run_writer_writes_epochs_in_batches_and_all_at_finish(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tunelab.results.run import RunWriter

    writer = RunWriter(tmp_path, flush_seconds=3600)
    writer.start({"a": 1})
    writer.epoch({"epoch": 1, "loss": 0.5})
    writer.epoch({"epoch": 2, "loss": 0.4})
    assert (tmp_path / "metrics.jsonl").read_text() == ""  # buffered, not one write per epoch
    writer.flush()
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2
    writer.epoch({"epoch": 3, "loss": 0.3})
    writer.finish({"w": torch.zeros(1)}, {"a": 1}, {})
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]


def test_member_dropout_keeps_each_members_rate_in_bf16() -> None:
    """Under bf16 autocast the draw and the rates stay fp32: each member drops its own share, and
    what it keeps is scaled by 1 / (1 - p), in the input's dtype."""
    from tunelab.pack.layers import member_dropout

    torch.manual_seed(0)
    x = torch.ones(4 * 2000, 64, dtype=torch.bfloat16)
    rates = torch.tensor([0.0, 0.2, 0.5, 0.9])
    y = member_dropout(x, rates, 4)
    assert y.dtype == torch.bfloat16
    per_member = y.float().view(4, 2000, 64)
    dropped = (per_member == 0).float().mean((1, 2))
    torch.testing.assert_close(dropped, rates, atol=0.005, rtol=0)
    for k, p in enumerate(rates.tolist()):
        kept = per_member[k][per_member[k] != 0]
        assert torch.all(kept == torch.tensor(1 / (1 - p)).to(torch.bfloat16).float())


@pytest.mark.usefixtures("strict_fp32")
@pytest.mark.parametrize("device", ["cpu", CUDA])
@pytest.mark.parametrize("family", ["gru", "resnet"])
def test_members_that_stop_together_are_evaluated_as_one_stack(family: str, device: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The members that end in the same epoch get their final metrics from one stacked pass over
    val and test (no solo pass each), equal to their kept models run alone (fp32 both ways); a
    member that ends alone is run alone, and so do recurrent members on a GPU (cuDNN's pass)."""
    from tunelab.train import result as result_module

    solo_passes = []
    predict = result_module.predict
    monkeypatch.setattr(result_module, "predict", lambda *a, **kw: solo_passes.append(1) or predict(*a, **kw))
    shape = [f"model.{k}={v}" for k, v in _tiny(family).items()] if family != "gru" else BASE[:3]
    cfgs = [
        load_config(
            None,
            [f"model.name={family}", *shape, "train.batch_size=16", "train.max_epochs=3", "train.amp=false", *v]
            + [f"device={device}"],
        )
        for v in VALUES[:3]
    ]
    splits = _splits()
    results = fit_pack(cfgs, splits, [[], [_PruneAt(1)], []])
    stacked = not (device == "cuda" and family == "gru")
    assert len(solo_passes) == (0 if stacked else 4)  # else val and test of the two that finished
    assert results[1].stop_reason == "pruned"  # a pruned member has no final pass
    for r in (results[0], results[2]):
        loss_fn = build_loss(r.config.loss, splits.meta, splits.train.y)
        for part in ("val", "test"):
            alone, _ = evaluate(r.model, getattr(splits, part), loss_fn)
            assert r.metrics[f"{part}_loss"] == pytest.approx(alone["loss"], rel=1e-5)
            assert r.metrics[f"{part}_acc"] == pytest.approx(alone["acc"])
    solo_passes.clear()
    alone_at_the_end = fit_pack(cfgs[:2], splits, [[], [_PruneAt(2)]])
    assert alone_at_the_end[0].stop_reason == "max_epochs" and len(solo_passes) == 2  # its val and test


def test_a_stacked_final_evaluation_that_fails_falls_back_to_one_pass_each(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Out of memory in the finished members' stack (beside a live pack on a GPU) fails nothing."""
    from tunelab.pack import engine as engine_module
    from tunelab.train import result as result_module

    built = engine_module.pack_models
    calls: list[int] = []

    def out_of_memory_after_the_first(models):  # type: ignore[no-untyped-def]
        calls.append(len(models))
        if len(calls) > 1:  # the first call builds the training pack
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return built(models)

    solo_passes = []
    predict = result_module.predict
    monkeypatch.setattr(engine_module, "pack_models", out_of_memory_after_the_first)
    monkeypatch.setattr(result_module, "predict", lambda *a, **kw: solo_passes.append(1) or predict(*a, **kw))
    cfgs = [load_config(None, BASE + v) for v in VALUES[:2]]
    results = fit_pack(cfgs, _splits())
    assert calls == [2, 2] and len(solo_passes) == 4  # the stack was tried, then val and test of each alone
    assert all(r.stop_reason == "max_epochs" and "test_acc" in r.metrics for r in results)


def test_packed_regression_errors_are_scaled_back_like_the_solo_ones() -> None:
    from tunelab.data.base import DataMeta
    from tunelab.pack.losses import member_metrics
    from tunelab.train.metrics import regression_metrics

    g = torch.Generator().manual_seed(0)
    out, y, scale = torch.randn(3, 10, 2, generator=g), torch.randn(10, 2, generator=g), torch.tensor([10.0, 0.5])
    meta = DataMeta("reg", 1, 4, task="regression", n_outputs=2)
    got = member_metrics(out, y, torch.ones(10, dtype=torch.long), meta, scale=scale)
    for k in range(3):
        solo = regression_metrics(out[k], y, scale=scale)
        assert float(got["mse"][k]) == pytest.approx(solo["mse"]) and float(got["mae"][k]) == pytest.approx(solo["mae"])
    assert regression_metrics(out[0], y, scale=scale)["mse"] == pytest.approx(
        float(((out[0] - y) * scale).square().mean())
    )


def test_packed_seq2seq_metrics_equal_the_solo_ones_with_a_target_scale() -> None:
    """MSE/MAE in the targets' units; the SNR from the (scaled alike) targets and outputs."""
    from tunelab.data.base import DataMeta
    from tunelab.pack.losses import member_metrics
    from tunelab.train.metrics import length_mask, regression_metrics, snr_db

    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([6, 3, 5, 6])
    pad = ~length_mask(lengths, 6).unsqueeze(-1)
    y, x = (torch.randn(4, 6, 2, generator=g).masked_fill(pad, 0) for _ in range(2))
    out, scale = torch.randn(3, 4, 6, 2, generator=g), torch.tensor([10.0, 0.5])
    meta = DataMeta("s2s", 2, 6, task="seq2seq", n_outputs=2)
    got = member_metrics(out, y, lengths, meta, x, scale=scale)
    for k in range(3):
        solo = regression_metrics(out[k], y, lengths, scale) | {"snr_db": snr_db(y, out[k], lengths)}
        for name, value in solo.items():
            assert float(got[name][k]) == pytest.approx(value, rel=1e-5), name
