"""The one loop: a single trial is a pack of one, trained as the plain torch loop would train it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from tests.helpers import builtin_families, strict_fp32, tiny_model_values, tiny_splits  # noqa: F401

import tunelab  # noqa: F401  (registers the model families)
from tunelab.config import load_config, validate_config
from tunelab.data import augment
from tunelab.data.batching import batch_indices, make_batch
from tunelab.models import build_model
from tunelab.pack import fit_pack
from tunelab.train import BaseCallback, fit
from tunelab.train.device import seed_everything
from tunelab.train.losses import build_loss
from tunelab.train.optim import LRSchedule, build_optimizer

# dropout, augmentation, clipping, warm-up and a body/head split: every random stream and rule
ONE = [
    "model.hidden_dim=8",
    "model.num_layers=2",
    "model.dropout=0.2",
    "data.augment.jitter=0.05",
    "train.batch_size=16",
    "train.max_epochs=3",
    "train.clip_norm=0.5",
    "train.schedule=cosine",
    "train.warmup_epochs=1",
    "train.body_lr_scale=0.5",
]


def _losses(result) -> torch.Tensor:  # type: ignore[no-untyped-def]
    return torch.tensor([[r.metrics["train_loss"], r.metrics["val_loss"]] for r in result.history], dtype=torch.float64)


def test_a_pack_of_one_equals_the_ordinary_run_bit_for_bit() -> None:
    cfg = load_config(None, ONE)
    solo = fit(cfg, data=tiny_splits(n=48))
    (member,) = fit_pack([cfg], tiny_splits(n=48))
    assert torch.equal(_losses(solo), _losses(member))
    weights, packed = solo.model.state_dict(), member.model.state_dict()
    assert weights.keys() == packed.keys() and all(torch.equal(weights[n], packed[n]) for n in weights)
    assert (member.best_epoch, member.stop_reason) == (solo.best_epoch, solo.stop_reason)
    assert member.extra == {"pack_member": 0, "pack_size": 1} and solo.extra == {}


def _plain_torch_train_losses(cfg, splits) -> list[float]:  # type: ignore[no-untyped-def]
    """The textbook loop over the same parts: torch's optimizer, clip_grad_norm_, one batch order."""
    seed_everything(cfg.seed)
    model = build_model(cfg.model, splits.meta)
    loss_fn = build_loss(cfg.loss, splits.meta, splits.train.y)
    opt = build_optimizer(model, cfg.train)
    steps = math.ceil(len(splits.train) / cfg.train.batch_size)
    schedule = LRSchedule(cfg.train, steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    aug_gen = torch.Generator().manual_seed(cfg.seed + 1)
    losses, step, tc = [], 0, cfg.train
    for _ in range(cfg.train.max_epochs):
        model.train()
        total = torch.zeros(())
        train = splits.train
        for idx in batch_indices(
            len(train), tc.batch_size, shuffle=True, generator=gen, lengths=train.host_lengths, bucket=cfg.data.bucket
        ):
            inputs, y = make_batch(train, idx)
            inputs["x"] = augment(inputs["x"], inputs["lengths"], cfg.data.augment, aug_gen)
            loss = loss_fn(model(**inputs), y, inputs["lengths"])
            loss.backward()
            total += loss.detach()
            schedule.apply(opt, step)
            if tc.clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.clip_norm)
            opt.step()
            opt.zero_grad()
            step += 1
        losses.append(float(total) / steps)
        model.eval()  # the loop evaluates between epochs (no random stream is used there)
    return losses


@pytest.mark.parametrize("clip", ["0.5", "null"])
def test_a_single_trial_trains_as_the_plain_torch_loop(clip: str) -> None:
    """The K = 1 engine is torch's own training (ordinary model, torch optimizer), bit for bit,
    with clipping and without (where it only measures the gradient norm)."""
    cfg = load_config(None, [*ONE, "train.early_stopping.patience=null", f"train.clip_norm={clip}"])
    result = fit(cfg, data=tiny_splits(n=48))
    assert [r.metrics["train_loss"] for r in result.history] == _plain_torch_train_losses(cfg, tiny_splits(n=48))
    assert all(r.metrics["grad_norm"] > 0 for r in result.history)


class TrialPruned(Exception):
    """Not Optuna's: a pruned member is told by the exception's type, not by its class name."""


class _RaiseAt(BaseCallback):
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def on_epoch_end(self, ctx, report) -> None:  # type: ignore[no-untyped-def]
        raise self.exc


def test_a_member_is_pruned_by_the_exception_type_not_its_name() -> None:
    import optuna

    cfgs = [load_config(None, [*ONE, f"train.lr={lr}"]) for lr in (1e-3, 2e-3, 3e-3)]
    callbacks = [[_RaiseAt(TrialPruned())], [_RaiseAt(optuna.TrialPruned())], []]
    named, pruned, free = fit_pack(cfgs, tiny_splits(n=48), callbacks)
    assert (named.stop_reason, pruned.stop_reason, free.stop_reason) == ("error: TrialPruned", "pruned", "max_epochs")
    assert named.epochs == pruned.epochs == 1 and free.epochs == 3


def test_a_solo_run_raises_its_callbacks_exception_after_one_epoch(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = load_config(None, ONE)
    with pytest.raises(TrialPruned):
        fit(cfg, data=tiny_splits(n=48), callbacks=[_RaiseAt(TrialPruned())], run_dir=tmp_path)
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 1
    assert not (tmp_path / "best_model.pt").exists()  # a failed run writes no checkpoint


def test_the_schedule_writes_device_tensor_learning_rates_in_place() -> None:
    """A captured step reads its learning rates from tensors in the optimizer's groups: the schedule
    must write those very tensors (no new Python float), with the values it gives plain groups."""
    cfg = load_config(None, ONE)
    model = build_model(cfg.model, tiny_splits(n=48).meta)
    plain, held = build_optimizer(model, cfg.train), build_optimizer(model, cfg.train)
    for g in held.param_groups:
        g["lr"] = torch.tensor(g["lr"])
    tensors = [g["lr"] for g in held.param_groups]
    schedule = LRSchedule(cfg.train, 3)
    for step in (0, 1, 4, 8):
        schedule.apply(plain, step)
        schedule.apply(held, step)
        assert [g["lr"] for g in held.param_groups] == tensors  # the same objects, written in place
        assert [float(g["lr"]) for g in held.param_groups] == pytest.approx([g["lr"] for g in plain.param_groups])


CUDA_ONLY = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _engine_run(cfg, splits, graphs: bool):  # type: ignore[no-untyped-def]
    from tunelab.train.engine import Engine

    device = torch.device("cuda")
    # one length per bucket: eager steps trim each batch to its own longest series, so a wider
    # bucket changes only the summation order, which BatchNorm on a batch of 2 and Adam amplify
    engine = Engine([cfg], splits.meta, splits.train.to(device), device, graphs=graphs, bucket_step=1)
    losses = []
    for _ in range(cfg.train.max_epochs):
        engine.train_epoch()
        losses.append(float(engine.loss_sum) / engine.steps_per_epoch)
    return engine, torch.tensor(losses, dtype=torch.float64)


@pytest.mark.usefixtures("strict_fp32")
@pytest.mark.parametrize("family", [pytest.param(f, marks=CUDA_ONLY) for f in builtin_families()])
def test_a_captured_single_trial_trains_as_its_eager_steps(family: str) -> None:
    """Every family's single-trial step in CUDA graphs (fused capturable AdamW, device learning
    rates, cuDNN's RNNs) trains as the same step run eagerly: the first step and the partial last
    batch of each epoch eager, the rest replayed; strict fp32, so only the fused optimizer's
    rounding differs.  Dropout is off: a graph draws its own dropout masks."""
    train = {"batch_size": 16, "max_epochs": 3, "clip_norm": 0.5, "schedule": "cosine", "warmup_epochs": 1}
    train |= {"body_lr_scale": 0.5, "optimizer": "adamw", "early_stopping": {"patience": None}}
    train |= {"amp": False}  # bf16 autocast is on by default on CUDA: this checks fp32
    cfg = validate_config({"model": {"name": family, **tiny_model_values(family)}, "train": train})
    splits = tiny_splits(n=50)  # batches of 16, 16, 16 and 2
    eager, eager_losses = _engine_run(cfg, splits, graphs=False)
    captured, losses = _engine_run(cfg, splits, graphs=True)
    assert captured.graph_error is None and not eager._graphs
    # captured unless the model says its forward waits on the host (packed sequences)
    assert bool(captured._graphs) == getattr(captured.model, "capturable", True)
    assert torch.allclose(losses, eager_losses, rtol=1e-4)
    for name, w in eager.model.state_dict().items():
        assert torch.allclose(captured.model.state_dict()[name], w, rtol=1e-3, atol=1e-5), name


FAILED_CAPTURE = """
import torch
from tests.helpers import tiny_model_values, tiny_splits
from tunelab.config import validate_config
from tunelab.train.engine import Engine

train = {"batch_size": 16, "max_epochs": 1, "amp": False, "early_stopping": {"patience": None}}
cfg = validate_config({"model": {"name": "tcn", **tiny_model_values("tcn")}, "train": train})
splits, device = tiny_splits(n=50), torch.device("cuda")
engine = Engine([cfg], splits.meta, splits.train.to(device), device, graphs=True)
body = engine._graph_body

def waits_on_the_host(st):
    body(st)
    float(st["x"].sum())  # a host sync: not allowed while a stream captures

engine._graph_body = waits_on_the_host
before = torch.cuda.current_stream(device)
engine.train_epoch()
engine.train_epoch()
assert engine.graph_error is not None and not engine.graphs, engine.graph_error
assert torch.cuda.current_stream(device) == before, "the failed capture's stream stayed current"
assert torch.isfinite(engine.loss_sum).all()
print("ok", engine.graph_error)
"""


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_failed_capture_trains_eagerly_on_the_stream_it_started_on() -> None:
    """A step that waits on the host cannot be captured: the run goes on eagerly, and the side
    stream of the failed capture does not stay current.  In a child process: a CUDA error there
    cannot spoil the other GPU tests."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", FAILED_CAPTURE], cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.startswith("ok"), done.stderr[-2000:]


def test_the_deadline_anneal_decays_linearly_to_zero_and_continues_from_where_it_is() -> None:
    schedule = LRSchedule(load_config(None, ["train.schedule=none", "train.lr=0.01"]).train, steps_per_epoch=10)
    assert schedule.lr(0.01, 5) == 0.01 and not schedule.annealing
    schedule.anneal(10, 10)  # a stop known 10 steps ahead: 1 at step 10, 0 at step 20
    assert [round(schedule.anneal_factor(s), 6) for s in (10, 15, 20, 25)] == [1.0, 0.5, 0.0, 0.0]
    schedule.anneal(15, 10)  # a fresh estimate (the stop is later): from 0.5 now to 0 at step 25
    assert [round(schedule.anneal_factor(s), 6) for s in (15, 20, 25)] == [0.5, 0.25, 0.0]
    assert schedule.lr(0.01, 20) == pytest.approx(0.0025)


class _StopsNow(BaseCallback):
    """Says the run will be stopped now (its time is up) without stopping it."""

    def on_fit_start(self, ctx) -> None:  # type: ignore[no-untyped-def]
        import time

        ctx.stop_at = time.time()


def test_a_member_whose_stop_is_near_anneals_its_learning_rate_and_the_others_do_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Solo and in a pack: a member with a known stop (``ctx.stop_at``) decays to the floor within an
    epoch of its estimate; a member without one, or with ``deadline_anneal=0``, keeps its rate.
    (Whole epochs here: the cut at the stop time, tested in tests/tune/test_portfolio.py, is off.)"""
    from tunelab.train import loop

    monkeypatch.setattr(loop, "_due", lambda live: None)
    args = [*ONE[:-3], "train.schedule=plateau", "train.early_stopping.patience=null", "train.lr=0.004"]
    cfg = load_config(None, args)
    off = load_config(None, [*args, "train.deadline_anneal=0"])
    solo = fit(cfg, data=tiny_splits(n=48), callbacks=[_StopsNow()])
    lrs = [r.metrics["lr/head"] for r in solo.history]
    assert lrs[0] == pytest.approx(0.004) and 0 < lrs[1] < lrs[0] and lrs[2] == cfg.train.min_lr
    annealed, free, disabled = fit_pack([cfg, cfg, off], tiny_splits(n=48), [[_StopsNow()], [], [_StopsNow()]])
    assert [r.metrics["lr/head"] for r in annealed.history] == pytest.approx(lrs)
    assert all(r.metrics["lr/head"] == pytest.approx(0.004) for r in free.history + disabled.history)
