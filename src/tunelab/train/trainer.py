"""The training engine: one readable fit loop.

Our own loop (not a framework's) on purpose, for speed: data stays on the device and a batch is
an index slice; losses and gradient norms accumulate on the device and are read once per epoch
(no ``loss.item()`` per step, which would stall the GPU every step).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from tunelab.config import ExperimentConfig, save_config
from tunelab.data.base import SequenceData
from tunelab.data.batching import batch_indices, make_batch
from tunelab.models import build_model, count_parameters
from tunelab.results.run import RunWriter
from tunelab.train.callbacks import Callback, Diverged, EarlyStopper, EpochReport, FitContext, StopTraining
from tunelab.train.device import resolve_device, seed_everything
from tunelab.train.losses import SequenceLoss, build_loss
from tunelab.train.metrics import (
    classification_metrics,
    expected_calibration_error,
    fit_temperature,
    regression_metrics,
    snr_db,
)
from tunelab.train.optim import LRSchedule, build_optimizer

__all__ = ["RunResult", "evaluate", "fit", "predict"]

log = logging.getLogger(__name__)

_MAX_METRICS = ("acc", "f1", "snr_db", "snr_gain_db")


@dataclass
class RunResult:
    """What a finished fit returns.  ``metrics`` holds train_loss and val_* at the best epoch,
    test_* of the kept weights, gap (val_loss - train_loss), and calibration figures."""

    config: ExperimentConfig
    model: nn.Module
    history: list[EpochReport]
    best_epoch: int
    epochs: int
    n_params: int
    seconds: float
    metrics: dict[str, float]
    stop_reason: str
    temperature: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (what summary.json holds)."""
        return {
            "best_epoch": self.best_epoch,
            "epochs": self.epochs,
            "n_params": self.n_params,
            "seconds": round(self.seconds, 3),
            "stop_reason": self.stop_reason,
            "temperature": self.temperature,
            "metrics": self.metrics,
        }


def monitor_mode(monitor: str, mode: str) -> str:
    """``auto``: max for accuracy/F1/SNR metrics, min for losses and errors."""
    if mode != "auto":
        return mode
    return "max" if monitor.rsplit("_", 1)[-1] in _MAX_METRICS or monitor.endswith(_MAX_METRICS) else "min"


@torch.no_grad()
def predict(model: nn.Module, data: SequenceData, batch_size: int = 256, amp: bool = False) -> Tensor:
    """Model outputs for every row of ``data``, in order (float32)."""
    model.eval()
    outs = []
    for idx in batch_indices(len(data), batch_size, shuffle=False):
        inputs, _ = make_batch(data, idx)
        with _autocast(data.x.device, amp):
            out = model(**inputs).float()
        if out.dim() == 3:  # seq2seq: pad back to the split's full length
            out = nn.functional.pad(out, (0, 0, 0, data.x.shape[1] - out.shape[1]))
        outs.append(out)
    return torch.cat(outs) if outs else torch.empty(0)


@torch.no_grad()
def evaluate(
    model: nn.Module, data: SequenceData, loss_fn: SequenceLoss, batch_size: int = 256, amp: bool = False
) -> tuple[dict[str, float], Tensor]:
    """Loss and task metrics on ``data`` (names without split prefix), plus the raw outputs."""
    if len(data) == 0:
        return {}, torch.empty(0)
    out = predict(model, data, batch_size, amp)
    metrics = {"loss": float(loss_fn(out, data.y, data.lengths))}
    task = data.meta.task
    if task == "classification":
        metrics |= classification_metrics(out, data.y, data.meta.n_classes)
    else:
        metrics |= regression_metrics(out, data.y, data.lengths if task == "seq2seq" else None)
        if task == "seq2seq" and data.x.shape[-1] == data.y.shape[-1]:
            metrics["snr_db"] = snr_db(data.y, out, data.lengths)
            metrics["snr_gain_db"] = metrics["snr_db"] - snr_db(data.y, data.x, data.lengths)
    return metrics, out


def _autocast(device: torch.device, amp: bool) -> Any:
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def fit(
    cfg: ExperimentConfig,
    *,
    data: Any | None = None,
    callbacks: Sequence[Callback] = (),
    run_dir: str | Path | None = None,
) -> RunResult:
    """Train ``cfg`` and return the best weights and their metrics.

    ``data`` is a prepared ``Splits`` (from ``tunelab.data.prepare``); by default it is prepared
    from ``cfg.data``.  ``callbacks`` observe each epoch and may stop training.  With ``run_dir``,
    the run's config, per-epoch metrics, best checkpoint and summary are written there.
    """
    device = resolve_device(cfg.device)
    try:
        return _fit(cfg, data, callbacks, run_dir, device)
    except NotImplementedError as exc:
        if device.type != "mps":
            raise
        log.warning("an operation is missing on MPS (%s); training on cpu instead", exc)
        return _fit(cfg, data, callbacks, run_dir, torch.device("cpu"))


def _fit(
    cfg: ExperimentConfig, data: Any, callbacks: Sequence[Callback], run_dir: str | Path | None, device: torch.device
) -> RunResult:
    from tunelab.data import augment, prepare

    t_start = time.perf_counter()
    seed_everything(cfg.seed)
    splits = data if data is not None else prepare(cfg.data, cfg.seed)
    train, val, test = (s.to(device) for s in (splits.train, splits.val, splits.test))
    meta = splits.meta
    tc = cfg.train

    seed_everything(cfg.seed)  # the model's init does not depend on how data was prepared
    model = build_model(cfg.model, meta).to(device)
    n_params = count_parameters(model)
    loss_fn = build_loss(cfg.loss, meta, train.y.cpu()).to(device)
    optimizer = build_optimizer(model, tc)
    micro_per_epoch = math.ceil(len(train) / tc.batch_size)
    steps_per_epoch = tc.steps_per_epoch or max(1, micro_per_epoch // tc.grad_accum)
    schedule = LRSchedule(tc, steps_per_epoch)
    es_cfg = tc.early_stopping
    monitor = es_cfg.monitor
    stopper = EarlyStopper(monitor_mode(monitor, es_cfg.mode), es_cfg.patience, es_cfg.min_delta)
    params = [p for p in model.parameters() if p.requires_grad]
    clip = tc.clip_norm if tc.clip_norm is not None else math.inf
    gen = torch.Generator().manual_seed(cfg.seed)
    aug_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)

    config_dict = save_config(cfg)
    writer = RunWriter(run_dir) if run_dir is not None else None
    if writer:
        writer.start(config_dict)
    ctx = FitContext(config=cfg, meta=meta, model=model, n_params=n_params, run_dir=Path(run_dir) if run_dir else None)
    for cb in callbacks:
        cb.on_fit_start(ctx)

    history: list[EpochReport] = []
    best_state = copy.deepcopy(model.state_dict())
    best_epoch, stop_reason, step = 0, "max_epochs", 0
    queue: list[Tensor] = []
    for epoch in range(1, tc.max_epochs + 1):
        t0 = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=device)
        norm_sum = torch.zeros((), device=device)
        clipped = torch.zeros((), device=device)
        for _ in range(steps_per_epoch):
            for _ in range(tc.grad_accum):
                if not queue:  # a fresh shuffled pass whenever the previous one is used up
                    queue = batch_indices(
                        len(train),
                        tc.batch_size,
                        shuffle=True,
                        generator=gen,
                        lengths=train.host_lengths,
                        bucket=cfg.data.bucket,
                    )[::-1]
                inputs, y = make_batch(train, queue.pop())
                inputs["x"] = augment(inputs["x"], inputs["lengths"], cfg.data.augment, aug_gen)
                with _autocast(device, tc.amp):
                    out = model(**inputs)
                loss = loss_fn(out, y, inputs["lengths"])
                (loss / tc.grad_accum).backward()
                loss_sum += loss.detach() / tc.grad_accum
            schedule.apply(optimizer, step)
            norm = torch.nn.utils.clip_grad_norm_(params, clip)
            norm_sum += norm
            clipped += (norm > clip).float()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1

        train_loss = float(loss_sum) / steps_per_epoch  # one host sync per epoch
        if not math.isfinite(train_loss):
            raise Diverged(epoch, "train loss")
        val_metrics, _ = evaluate(model, val, loss_fn, amp=tc.amp)
        metrics = {"train_loss": train_loss} | {f"val_{k}": v for k, v in val_metrics.items()}
        if not math.isfinite(metrics.get("val_loss", 0.0)):
            raise Diverged(epoch, "validation loss")
        for g in optimizer.param_groups:
            metrics[f"lr/{g['name']}"] = g["lr"]
        metrics["grad_norm"] = float(norm_sum) / steps_per_epoch
        metrics["clip_frac"] = float(clipped) / steps_per_epoch
        extra_scalars = getattr(model, "extra_scalars", None)
        if callable(extra_scalars):
            metrics |= {f"extra/{k}": float(v) for k, v in extra_scalars().items()}
        metrics["seconds"] = time.perf_counter() - t0
        if monitor not in metrics:
            from tunelab.errors import UserError

            raise UserError(
                f"train.early_stopping.monitor: '{monitor}' is not a metric of this run; use one of {', '.join(k for k in metrics if k.startswith(('val_', 'train_')))}"
            )
        schedule.on_epoch_end(metrics["val_loss"])
        improved = stopper.update(metrics[monitor])
        if improved:
            best_state = copy.deepcopy(model.state_dict())
            best_epoch = epoch
        report = EpochReport(epoch=epoch, metrics=metrics, improved=improved)
        history.append(report)
        if writer:
            writer.epoch({"epoch": epoch, **metrics})
        try:
            for cb in callbacks:
                cb.on_epoch_end(ctx, report)
        except StopTraining as exc:
            stop_reason = str(exc) or "stopped by callback"
            break
        if stopper.stop:
            stop_reason = "early_stopping"
            break

    model.load_state_dict(best_state)
    result_metrics = _final_metrics(
        model, val, test, loss_fn, history, best_epoch, tc.amp, calibrate=cfg.loss.temperature_scaling
    )
    temperature = result_metrics.pop("temperature", 1.0)
    result = RunResult(
        config=cfg,
        model=model,
        history=history,
        best_epoch=best_epoch,
        epochs=len(history),
        n_params=n_params,
        seconds=time.perf_counter() - t_start,
        metrics=result_metrics,
        stop_reason=stop_reason,
        temperature=temperature,
    )
    if writer:
        writer.finish(model.state_dict(), config_dict, result.summary())
    for cb in callbacks:
        cb.on_fit_end(ctx, result)
    return result


def _final_metrics(
    model: nn.Module,
    val: SequenceData,
    test: SequenceData,
    loss_fn: SequenceLoss,
    history: list[EpochReport],
    best_epoch: int,
    amp: bool,
    calibrate: bool = True,
) -> dict[str, float]:
    """val_* and test_* of the kept weights, train loss at that epoch, gap, calibration error; with
    ``calibrate``, the temperature fitted on validation and the test calibration error it gives."""
    val_m, val_out = evaluate(model, val, loss_fn, amp=amp)
    test_m, test_out = evaluate(model, test, loss_fn, amp=amp)
    out = {f"val_{k}": v for k, v in val_m.items()} | {f"test_{k}": v for k, v in test_m.items()}
    if best_epoch:
        out["train_loss"] = history[best_epoch - 1].metrics["train_loss"]
        out["gap"] = out["val_loss"] - out["train_loss"]
    if val.meta.task == "classification" and len(val) and loss_fn is not None:
        t = fit_temperature(val_out, val.y) if calibrate else 1.0
        out["temperature"] = t
        if len(test):
            out["test_ece"] = expected_calibration_error(test_out, test.y)
            if calibrate:
                out["test_ece_scaled"] = expected_calibration_error(test_out / t, test.y)
    return out
