"""What a run returns and how a model is evaluated: ``RunResult``, ``predict``, ``evaluate`` and
the final metrics of the kept weights (one definition each, for a solo run and a pack member)."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from tunelab.config import ExperimentConfig
from tunelab.data.base import SequenceData
from tunelab.data.batching import batch_indices, make_batch
from tunelab.train.callbacks import EpochReport
from tunelab.train.losses import SequenceLoss
from tunelab.train.metrics import (
    classification_metrics,
    expected_calibration_error,
    fit_temperature,
    regression_metrics,
    snr_db,
)

__all__ = ["RunResult", "autocast", "evaluate", "final_metrics", "monitor_mode", "predict", "score"]

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


def autocast(device: torch.device, amp: bool) -> Any:
    """bfloat16 autocast on CUDA when ``amp``; nothing otherwise (training and evaluation alike)."""
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


@torch.no_grad()
def predict(model: nn.Module, data: SequenceData, batch_size: int = 256, amp: bool = False) -> Tensor:
    """Model outputs for every row of ``data``, in order (float32)."""
    model.eval()
    outs = []
    for idx in batch_indices(len(data), batch_size, shuffle=False):
        inputs, _ = make_batch(data, idx)
        with autocast(data.x.device, amp):
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
    return score(out, data, loss_fn), out


@torch.no_grad()
def score(out: Tensor, data: SequenceData, loss_fn: SequenceLoss) -> dict[str, float]:
    """Loss and task metrics of the outputs ``out`` of every row of ``data`` (names without split
    prefix; none for an empty split)."""
    if len(data) == 0:
        return {}
    metrics = {"loss": float(loss_fn(out, data.y, data.lengths))}
    task = data.meta.task
    if task == "classification":
        metrics |= classification_metrics(out, data.y, data.meta.n_classes)
    else:
        metrics |= regression_metrics(out, data.y, data.lengths if task == "seq2seq" else None, data.y_scale)
        if task == "seq2seq" and data.x.shape[-1] == data.y.shape[-1]:
            metrics["snr_db"] = snr_db(data.y, out, data.lengths)
            metrics["snr_gain_db"] = metrics["snr_db"] - snr_db(data.y, data.x, data.lengths)
    return metrics


def split_digest(part: SequenceData) -> list[float]:
    """Sums that tell one split's rows from another's (size, values, their order, labels): a model's
    kept outputs are reused only for the data they were computed on.  Reductions in float64 without
    a copy of the split: each trial's end computes it beside two full evaluations."""
    if not len(part):
        return [0.0]
    x = part.x.flatten(1).sum(1, dtype=torch.float64)  # one number per row
    rows = torch.arange(1, len(part) + 1, device=x.device, dtype=torch.float64)
    sums = torch.stack([x.sum(), (x * rows).sum(), part.y.sum(dtype=torch.float64)])
    return [float(len(part)), *sums.tolist()]


def split_digests(splits: Any) -> dict[str, list[float]]:
    """The digests of a ``Splits``' non-empty val and test parts."""
    return {n: split_digest(getattr(splits, n)) for n in ("val", "test") if len(getattr(splits, n))}


def with_digests(outputs: dict[str, Tensor], parts: dict[str, SequenceData]) -> dict[str, Tensor]:
    """Model outputs as kept beside a model (a trial's checkpoint, the MiniRocket reference's file):
    each float32 on the CPU, with the digest of the rows it was computed on (``NAME_digest``)."""
    kept: dict[str, Tensor] = {}
    for name, out in outputs.items():
        kept[name] = out.float().cpu()
        kept[f"{name}_digest"] = torch.tensor(split_digest(parts[name]), dtype=torch.float64)
    return kept


def kept_outputs(kept: Any, digests: dict[str, list[float]]) -> dict[str, Tensor] | None:
    """The outputs :func:`with_digests` kept, when each part of ``digests`` (:func:`split_digests`)
    is there and was computed on those very rows (to float rounding: the sums may have run on
    another device); None otherwise: compute them again."""
    if not isinstance(kept, dict):
        return None
    for name, digest in digests.items():
        d = kept.get(f"{name}_digest")
        if name not in kept or not isinstance(d, Tensor) or d.numel() != len(digest):
            return None
        if not torch.allclose(d.double(), torch.tensor(digest, dtype=torch.float64), rtol=1e-6, atol=1e-6):
            return None
    return {name: kept[name].float() for name in digests}


def final_metrics(
    model: nn.Module,
    val: SequenceData,
    test: SequenceData,
    loss_fn: SequenceLoss,
    history: list[EpochReport],
    best_epoch: int,
    amp: bool,
    calibrate: bool = True,
    outputs: dict[str, Tensor] | None = None,
    predicted: tuple[Tensor, Tensor] | None = None,
) -> dict[str, float]:
    """val_* and test_* of the kept weights, train loss at that epoch, gap, calibration error; with
    ``calibrate``, the temperature fitted on validation and the test calibration error it gives.
    ``outputs``, for classification: filled with the val and test logits (float32, CPU).
    ``predicted``: the model's val and test outputs when they were computed already (a pack's
    finished members, run together); else the model is run here."""
    if predicted is None:
        val_m, val_out = evaluate(model, val, loss_fn, amp=amp)
        test_m, test_out = evaluate(model, test, loss_fn, amp=amp)
    else:
        val_out, test_out = predicted
        val_m, test_m = score(val_out, val, loss_fn), score(test_out, test, loss_fn)
    if outputs is not None and val.meta.task == "classification":
        outputs |= with_digests({"val": val_out, "test": test_out}, {"val": val, "test": test})
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
