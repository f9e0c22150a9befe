"""Train a pack: K configs that share a pack key, one stacked computation, K results.

:func:`fit_pack` is :func:`tunelab.train.fit` for a list of configs.  Each member gets its own
initial weights (built from its own seed, exactly as its solo run would), its own value
hyperparameters, early stopping, callbacks, history and :class:`~tunelab.train.RunResult`.
What members share: the data, the batch order and the augmentation random stream — all taken
from the **first** member's seed — and the dropout random stream.  So a member trained in a pack
with dropout off equals its solo run when it has the first member's seed.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from tunelab.config import ExperimentConfig, pack_key, save_config
from tunelab.data.base import DataMeta
from tunelab.models import build_model, count_parameters
from tunelab.pack.engine import PackEngine
from tunelab.pack.model import NotPackable, pack_models
from tunelab.train.callbacks import Callback, Diverged, EarlyStopper, EpochReport, FitContext, StopTraining
from tunelab.train.device import resolve_device

if TYPE_CHECKING:
    from tunelab.train.trainer import RunResult

__all__ = ["fit_pack", "pack_group_key", "packable"]

log = logging.getLogger(__name__)

#: Value fields that a family reads from its config inside ``forward`` (not through a layer), so
#: members of one pack must agree on them.
_SHARED_MODEL_VALUES: dict[str, tuple[str, ...]] = {"bilstm_enhanced": ("feature_dropout", "temporal_dropout")}


def pack_group_key(cfg: ExperimentConfig) -> tuple[Any, ...]:
    """Configs with equal keys can train together in one pack.

    The pack key (family and shape parameters) plus what a pack shares: the data section (but
    augmentation strengths, which may differ), device, steps per epoch, gradient accumulation,
    mixed precision, SGD versus Adam/AdamW, early-stopping monitor, and value fields that the
    family reads outside its layers.
    """
    data = cfg.data.model_dump(mode="json")
    data.pop("augment")
    tc = cfg.train
    shared = tuple((name, getattr(cfg.model, name)) for name in _SHARED_MODEL_VALUES.get(cfg.model.name, ()))
    return (
        pack_key(cfg),
        repr(sorted(data.items())),
        cfg.device,
        tc.steps_per_epoch,
        tc.grad_accum,
        tc.amp,
        tc.optimizer == "sgd",
        tc.early_stopping.monitor,
        shared,
    )


def packable(cfg: ExperimentConfig, meta: DataMeta) -> bool:
    """True when ``cfg``'s model has a stacked form (else it trains one at a time)."""
    try:
        model = build_model(cfg.model, meta)
        pack_models([model, copy.deepcopy(model)])
    except NotPackable:
        return False
    return True


PACK_FLUSH_SECONDS = 1.0


@dataclass
class _Member:
    index: int
    cfg: ExperimentConfig
    callbacks: Sequence[Callback]
    ctx: FitContext
    stopper: EarlyStopper
    writer: Any
    history: list[EpochReport] = field(default_factory=list)
    best_epoch: int = 0
    best_state: dict[str, Tensor] | None = None
    stop_reason: str | None = None
    exception: BaseException | None = None
    seconds: float = 0.0

    @classmethod
    def start(
        cls,
        index: int,
        cfg: ExperimentConfig,
        callbacks: Sequence[Callback],
        run_dir: str | Path | None,
        model: torch.nn.Module,
        meta: DataMeta,
        n_params: int,
        pack_size: int,
    ) -> _Member:
        """Member ``index``, its run directory started and ``on_fit_start`` called, as ``fit`` does."""
        from tunelab.results.run import RunWriter
        from tunelab.train.trainer import monitor_mode

        # a pack's members buffer their epoch lines (~1 write a second each, not one per epoch)
        writer = RunWriter(run_dir, flush_seconds=PACK_FLUSH_SECONDS) if run_dir is not None else None
        if writer:
            writer.start(save_config(cfg))
        where = Path(run_dir) if run_dir is not None else None
        info = {"pack_member": index, "pack_size": pack_size}
        ctx = FitContext(config=cfg, meta=meta, model=model, n_params=n_params, run_dir=where, info=info)
        es = cfg.train.early_stopping
        stopper = EarlyStopper(monitor_mode(es.monitor, es.mode), es.patience, es.min_delta)
        for cb in callbacks:
            cb.on_fit_start(ctx)
        return cls(index, cfg, callbacks, ctx, stopper, writer)

    def end_epoch(self, epoch: int, metrics: dict[str, float], monitor: str) -> bool:
        """Record the epoch and run the callbacks, as ``fit`` does for a solo run; True if the
        monitored metric improved.  Sets ``stop_reason`` when the member stops here."""
        if not math.isfinite(metrics["train_loss"]) or not math.isfinite(metrics.get("val_loss", 0.0)):
            what = "train loss" if not math.isfinite(metrics["train_loss"]) else "validation loss"
            self.stop_reason, self.exception = "diverged", Diverged(epoch, what)
            return False
        if monitor not in metrics:
            from tunelab.errors import UserError

            raise UserError(
                f"train.early_stopping.monitor: '{monitor}' is not a metric of this run; use one of {', '.join(k for k in metrics if k.startswith(('val_', 'train_')))}"
            )
        improved = self.stopper.update(metrics[monitor])
        if improved:
            self.best_epoch = epoch
        report = EpochReport(epoch=epoch, metrics=metrics, improved=improved, member=self.index)
        self.history.append(report)
        if self.writer:
            self.writer.epoch({"epoch": epoch, **metrics})
        try:
            for cb in self.callbacks:
                cb.on_epoch_end(self.ctx, report)
        except StopTraining as exc:
            self.stop_reason = str(exc) or "stopped by callback"
        except Exception as exc:  # noqa: BLE001  (a pruned member stops alone; the caller re-raises it)
            name = type(exc).__name__
            self.stop_reason, self.exception = ("pruned" if name == "TrialPruned" else f"error: {name}"), exc
        if self.stop_reason is None and self.stopper.stop:
            self.stop_reason = "early_stopping"
        if self.stop_reason is None and epoch >= self.cfg.train.max_epochs:
            self.stop_reason = "max_epochs"
        return improved

    def result(self, splits: tuple[Any, Any, Any], meta: DataMeta, n_params: int, pack_size: int) -> RunResult:
        """The member's ``RunResult``: its best weights in its own single model, final metrics
        computed as ``fit`` computes them, its run directory finished, ``on_fit_end`` called."""
        from tunelab.train.losses import build_loss
        from tunelab.train.trainer import RunResult, _final_metrics

        train, val, test = splits
        model = self.ctx.model
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
        extra: dict[str, Any] = {"pack_member": self.index, "pack_size": pack_size}
        failed = self.exception is not None
        temperature = 1.0
        if failed:
            extra["exception"] = self.exception
            metrics = dict(self.history[self.best_epoch - 1].metrics) if self.best_epoch else {}
        else:
            loss_fn = build_loss(self.cfg.loss, meta, train.y.cpu()).to(train.x.device)
            calibrate = self.cfg.loss.temperature_scaling
            amp = self.cfg.train.amp
            metrics = _final_metrics(model, val, test, loss_fn, self.history, self.best_epoch, amp, calibrate=calibrate)
            temperature = metrics.pop("temperature", 1.0)
        result = RunResult(
            config=self.cfg,
            model=model,
            history=self.history,
            best_epoch=self.best_epoch,
            epochs=len(self.history),
            n_params=n_params,
            seconds=self.seconds,
            metrics=metrics,
            stop_reason=self.stop_reason or ("" if failed else "max_epochs"),
            temperature=temperature,
            extra=extra,
        )
        if self.writer:
            self.writer.flush()  # before the trial is told: a finished trial's log is complete
        if not failed:  # a failed member's trial records it; it gets no checkpoint
            if self.writer:
                self.writer.finish(model.state_dict(), save_config(self.cfg), result.summary())
            for cb in self.callbacks:
                cb.on_fit_end(self.ctx, result)
        return result


def _slot_metrics(engine: PackEngine, val: Any) -> list[dict[str, float]]:
    """Each pack slot's epoch metrics (train loss, validation metrics, learning rates, gradient
    norm, clipped share), read from the device in one transfer."""
    val_m = engine.evaluate(val)
    names = list(val_m)
    table = torch.stack(
        [
            engine.loss_sum / engine.steps_per_epoch,
            engine.norm_sum / engine.steps_per_epoch,
            engine.clipped / engine.steps_per_epoch,
            *(val_m[n].float() for n in names),
        ]
    ).T.tolist()
    lrs = engine.schedule.host_lrs(engine.step_count - 1)
    out = []
    for s, row in enumerate(table):
        metrics = {"train_loss": row[0]} | {f"val_{n}": v for n, v in zip(names, row[3:], strict=True)}
        metrics |= {"lr/body": lrs[s][0], "lr/head": lrs[s][1], "grad_norm": row[1], "clip_frac": row[2]}
        if engine.model.head is None:
            metrics.pop("lr/head")
        out.append(metrics)
    return out


def fit_pack(
    cfgs: Sequence[ExperimentConfig],
    data: Any,
    callbacks_per_member: Sequence[Sequence[Callback]] | None = None,
    *,
    run_dirs: Sequence[str | Path | None] | None = None,
    compact_below: float = 0.5,
    graphs: bool = True,
    compile: bool = False,
    tf32: bool = False,
) -> list[RunResult]:
    """Train K configs that share :func:`pack_group_key` as one pack; one ``RunResult`` each.

    ``data`` is the prepared ``Splits`` (``tunelab.data.prepare(cfgs[0].data, cfgs[0].seed)``):
    every member trains on it, in the batch order and augmentation stream of the first member's
    seed.  ``callbacks_per_member[k]`` observe member k (its ``EpochReport`` carries ``member=k``)
    and may stop it alone: ``StopTraining`` ends it like early stopping; any other exception
    (an Optuna pruning callback's ``TrialPruned``) ends it with ``stop_reason`` "pruned" and the
    exception in ``result.extra["exception"]`` for the caller to re-raise in that member's trial.
    A member whose loss is not finite ends with "diverged" and a ``Diverged`` there.  Stopped
    members are masked out; when fewer than ``compact_below`` of the pack's slots are still
    training, the pack is compacted to the live members.  ``run_dirs[k]`` (optional) gets member
    k's config, metrics.jsonl, best checkpoint and summary, as a solo run's directory.

    Results come in the order of ``cfgs``; each one's ``model`` is an ordinary single model with
    the member's best weights and ``metrics`` are computed exactly as ``fit`` computes them.
    ``ctx.model`` in a callback is that single model, but it holds the initial weights until the
    member finishes (the live weights are inside the pack).

    On CUDA, ``graphs`` captures each training step in a CUDA graph (per length bucket),
    ``compile`` fuses recurrent gate arithmetic with ``torch.compile``, and ``tf32`` allows TF32
    matmuls (all three leave CPU runs untouched; see :class:`~tunelab.pack.engine.PackEngine`).
    """
    if not cfgs:
        return []
    keys = {pack_group_key(c) for c in cfgs}
    if len(keys) > 1:
        raise ValueError(
            "fit_pack: the configs do not share a pack group key (family, shapes, data, optimizer kind, ...); group them with pack_group_key"
        )
    k_total = len(cfgs)
    callbacks_per_member = callbacks_per_member or [()] * k_total
    run_dirs = run_dirs or [None] * k_total
    if len(callbacks_per_member) != k_total or len(run_dirs) != k_total:
        raise ValueError("fit_pack: one callbacks list and one run_dir per config")

    t_start = time.perf_counter()
    first = cfgs[0]
    device = resolve_device(first.device)
    train, val, test = (s.to(device) for s in (data.train, data.val, data.test))
    meta = data.meta
    engine = PackEngine(cfgs, meta, train, device, tf32=tf32, compile=compile, graphs=graphs)
    n_params = count_parameters(engine.solo_models[0])

    members = [
        _Member.start(
            i, cfg, callbacks_per_member[i], run_dirs[i], engine.solo_models[i].to(device), meta, n_params, k_total
        )
        for i, cfg in enumerate(cfgs)
    ]

    slots = list(range(k_total))  # slot s of the pack holds member slots[s]
    best = {n: v.detach().clone() for n, v in engine.model.body.state_dict().items()}
    max_epochs = max(c.train.max_epochs for c in cfgs)
    monitor = first.train.early_stopping.monitor
    for epoch in range(1, max_epochs + 1):
        t0 = time.perf_counter()
        engine.train_epoch()
        rows = _slot_metrics(engine, val)
        seconds = time.perf_counter() - t0
        improved_slots = []
        for s, member_index in enumerate(slots):
            m = members[member_index]
            if m.stop_reason is not None:
                continue
            metrics = rows[s] | {"seconds": seconds}
            if m.end_epoch(epoch, metrics, monitor):
                improved_slots.append(s)
            if m.stop_reason != "diverged":
                engine.schedule.on_epoch_end(s, metrics["val_loss"])
        if improved_slots:
            idx = torch.tensor(improved_slots, device=device)
            for n, v in engine.model.body.state_dict().items():
                best[n].index_copy_(0, idx, v.detach()[idx])
        stopped = []
        for s, member_index in enumerate(slots):
            m = members[member_index]
            if m.stop_reason is not None and bool(engine.live[s]):
                m.best_state = {n: v[s].clone() for n, v in best.items()}
                m.seconds = time.perf_counter() - t_start
                stopped.append(s)
        if stopped:
            engine.live[torch.tensor(stopped, device=device)] = False
        live = [s for s in range(len(slots)) if members[slots[s]].stop_reason is None]
        if not live:
            break
        if len(live) < compact_below * len(slots):
            engine.select_(live)
            slots = [slots[s] for s in live]
            idx = torch.tensor(live, device=device)
            best = {n: v[idx].contiguous() for n, v in best.items()}
            log.debug("pack compacted to %d members", len(slots))

    splits = (train, val, test)
    return [m.result(splits, meta, n_params, k_total) for m in members]
