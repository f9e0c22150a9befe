"""Metrics computed on device tensors: accuracy, macro F1, regression errors, SNR, calibration."""

from __future__ import annotations

import math

import torch
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


def regression_metrics(
    pred: Tensor, y: Tensor, lengths: Tensor | None = None, scale: Tensor | None = None
) -> dict[str, float]:
    """MSE and MAE; for sequences, over valid steps only.  ``scale`` ``[D]``: the targets were
    divided by it (``SequenceData.y_scale``), so errors are multiplied by it: the targets' own units."""
    err = pred.float() - y.float()
    if scale is not None:
        err = err * scale.to(err)
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


#: The range a fitted temperature is kept in (separable validation data would drive it to 0).
TEMPERATURE_RANGE = (0.01, 100.0)


def fit_temperature(logits: Tensor, y: Tensor) -> float:
    """The temperature T minimising validation NLL of logits / T (Guo et al. 2017), in
    :data:`TEMPERATURE_RANGE`.

    The NLL is convex in b = 1/T (a log-sum-exp of b·z minus b·z_y), with gradient
    mean(E_p[z] - z_y) and curvature mean(Var_p[z]), so Newton steps on the host (each checked to
    lower the NLL) reach the minimum in a few iterations: no autograd, no device round trip per step.
    """
    z = logits.detach().to("cpu", torch.float64)
    if z.numel() == 0:
        return 1.0
    zy = z.gather(1, y.detach().to("cpu", torch.long).view(-1, 1)).squeeze(1)
    lo, hi = 1 / TEMPERATURE_RANGE[1], 1 / TEMPERATURE_RANGE[0]

    def nll(b: float) -> float:
        return float((torch.logsumexp(b * z, 1) - b * zy).mean())

    b, f = 1.0, nll(1.0)
    for _ in range(100):
        p = torch.softmax(b * z, 1)
        ez = (p * z).sum(1)
        grad = float((ez - zy).mean())
        curv = float(((p * z * z).sum(1) - ez * ez).mean())
        # the Newton point, or a factor of 2 in the downhill direction when that is lower (the NLL's
        # tail is exponential when it falls all the way to a bound; Newton alone crawls there)
        newton = b - grad / curv if curv > 1e-12 else b
        candidates = [min(max(x, lo), hi) for x in (newton, 2 * b if grad < 0 else b / 2)]
        nb, nf = min(((x, nll(x)) for x in candidates), key=lambda c: c[1])
        if nf > f:  # neither lowers it: we are at the minimum to rounding
            break
        done = abs(nb - b) <= 1e-9 * b
        b, f = nb, nf
        if done:
            break
    t = 1 / b
    return t if math.isfinite(t) else 1.0
