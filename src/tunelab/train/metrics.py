"""Metrics computed on device tensors: accuracy, macro F1, regression errors, SNR, calibration."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from tunelab.models.base import length_mask

__all__ = ["classification_metrics", "expected_calibration_error", "fit_temperature", "regression_metrics", "snr_db"]


def classification_metrics(logits: Tensor, y: Tensor, n_classes: int) -> dict[str, float]:
    """Accuracy and macro F1 (mean over classes present in targets or predictions, as scikit-learn)."""
    pred = logits.argmax(-1)
    conf = torch.bincount(y * n_classes + pred, minlength=n_classes * n_classes).view(n_classes, n_classes).double()
    tp = conf.diag()
    support, predicted = conf.sum(1), conf.sum(0)
    f1 = torch.where(support + predicted > 0, 2 * tp / (support + predicted).clamp_min(1), torch.zeros_like(tp))
    present = (support + predicted) > 0
    return {"acc": float(tp.sum() / conf.sum().clamp_min(1)), "f1": float(f1[present].mean()) if present.any() else 0.0}


def regression_metrics(pred: Tensor, y: Tensor, lengths: Tensor | None = None) -> dict[str, float]:
    """MSE and MAE; for sequences, over valid steps only."""
    err = pred.float() - y.float()
    if lengths is not None and err.dim() == 3:
        mask = length_mask(lengths, err.shape[1]).unsqueeze(-1).expand_as(err)
        err = err[mask]
    return {"mse": float(err.square().mean()), "mae": float(err.abs().mean())}


def snr_db(signal: Tensor, estimate: Tensor, lengths: Tensor) -> float:
    """Mean over sequences of 10·log10(|signal|² / |estimate − signal|²), valid steps only."""
    mask = length_mask(lengths, signal.shape[1]).unsqueeze(-1).to(signal.dtype)
    power = (signal.float().square() * mask).sum((1, 2))
    noise = ((estimate.float() - signal.float()).square() * mask).sum((1, 2)).clamp_min(1e-12)
    return float((10 * torch.log10(power.clamp_min(1e-12) / noise)).mean())


def expected_calibration_error(logits: Tensor, y: Tensor, bins: int = 15) -> float:
    """ECE with equal-width confidence bins."""
    probs = logits.float().softmax(-1)
    conf, pred = probs.max(-1)
    correct = (pred == y).float()
    edges = torch.linspace(0, 1, bins + 1, device=logits.device)
    idx = torch.bucketize(conf, edges[1:-1])
    ece = torch.zeros((), device=logits.device)
    for b in range(bins):
        m = idx == b
        if m.any():
            ece = ece + m.float().mean() * (conf[m].mean() - correct[m].mean()).abs()
    return float(ece)


def fit_temperature(logits: Tensor, y: Tensor) -> float:
    """The temperature T > 0 minimising validation NLL of logits / T (Guo et al. 2017)."""
    log_t = torch.zeros(1, device=logits.device, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=100)
    logits = logits.detach().float()

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.detach().exp())
    return t if math.isfinite(t) else 1.0
