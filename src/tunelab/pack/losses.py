"""Per-member losses and metrics of a pack: one call gives a K-vector.

:class:`PackedLoss` is :class:`tunelab.train.losses.SequenceLoss` with its value parameters
(label smoothing, focal gamma, confidence penalty, class weights on/off, MSE or L1) held as
K-vectors.  It uses the same formulas, so a member's loss equals its solo loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tunelab.config import LossConfig
from tunelab.data.base import DataMeta
from tunelab.models.base import length_mask
from tunelab.train.losses import SequenceLoss, class_weights, focal_factor

__all__ = ["PackedLoss", "member_metrics"]


class PackedLoss(nn.Module):
    """``forward(output [K, B, ...], target [B, ...], lengths [B]) -> [K]`` losses."""

    gamma: Tensor
    smoothing: Tensor
    penalty: Tensor
    weights: Tensor
    use_l1: Tensor

    def __init__(self, cfgs: Sequence[LossConfig], meta: DataMeta, train_y: Tensor) -> None:
        super().__init__()
        solo = [SequenceLoss(c, meta) for c in cfgs]  # resolves 'auto' and task mismatches as solo runs do
        self.task = meta.task
        self.register_buffer("gamma", torch.tensor([s.gamma for s in solo]), persistent=False)
        self.register_buffer("smoothing", torch.tensor([s.smoothing for s in solo]), persistent=False)
        self.register_buffer("penalty", torch.tensor([s.penalty for s in solo]), persistent=False)
        self.register_buffer("use_l1", torch.tensor([s.name == "l1" for s in solo]), persistent=False)
        n = max(meta.n_classes, 1)
        ones = torch.ones(n)
        w = class_weights(train_y, n) if meta.task == "classification" and any(c.class_weights for c in cfgs) else ones
        self.register_buffer("weights", torch.stack([w if c.class_weights else ones for c in cfgs]), persistent=False)
        self._any_gamma = any(s.gamma > 0 for s in solo)
        self._any_penalty = any(s.penalty > 0 for s in solo)

    def select_(self, idx: Tensor) -> None:
        """Keep members ``idx`` only."""
        for name in ("gamma", "smoothing", "penalty", "use_l1", "weights"):
            setattr(self, name, getattr(self, name)[idx.to(self.gamma.device)])

    def forward(self, output: Tensor, target: Tensor, lengths: Tensor | None = None) -> Tensor:
        if self.task == "classification":
            return self._classification(output.float(), target)
        err = output.float() - target.float().unsqueeze(0)
        l1 = self.use_l1.view(-1, *([1] * (err.dim() - 1)))
        per = torch.where(l1, err.abs(), err.square())
        if self.task == "seq2seq" and lengths is not None:
            mask = length_mask(lengths, per.shape[2]).unsqueeze(-1).to(per.dtype)
            return (per * mask).sum((1, 2, 3)) / (mask.sum() * per.shape[-1]).clamp_min(1.0)
        return per.flatten(1).mean(1)

    def _classification(self, logits: Tensor, y: Tensor) -> Tensor:
        k, b, _ = logits.shape
        logp = F.log_softmax(logits, dim=-1)
        ce = -logp.gather(2, y.view(1, b, 1).expand(k, b, 1)).squeeze(2)  # [K, B]
        s = self.smoothing[:, None]
        ce = (1 - s) * ce - s * logp.mean(-1)
        if self._any_gamma:
            logp_true = logp.gather(2, y.view(1, b, 1).expand(k, b, 1)).squeeze(2)
            ce = focal_factor(logp_true, self.gamma[:, None]) * ce
        w = self.weights[:, y]  # [K, B]; ones where a member does not weight classes
        loss = (w * ce).sum(1) / w.sum(1).clamp_min(1e-12)
        if self._any_penalty:
            entropy = -(logp.exp() * logp).sum(-1).mean(1)
            loss = loss - self.penalty * entropy
        return loss


def member_metrics(
    out: Tensor, y: Tensor, lengths: Tensor, meta: DataMeta, x: Tensor | None = None, scale: Tensor | None = None
) -> dict[str, Tensor]:
    """Every member's task metrics as K-vectors (the solo metrics, vectorised).

    Classification: acc and macro F1 (over classes present in targets or predictions);
    regression: mse, mae (errors times ``scale``, the split's ``y_scale``: the targets' units);
    seq2seq adds snr_db and snr_gain_db when output and input widths match.
    """
    k = out.shape[0]
    if meta.task == "classification":
        c = meta.n_classes
        pred = out.argmax(-1)  # [K, N]
        codes = torch.arange(k, device=out.device)[:, None] * c * c + y[None, :] * c + pred
        conf = torch.bincount(codes.flatten(), minlength=k * c * c).view(k, c, c).double()
        tp = conf.diagonal(dim1=1, dim2=2)
        support, predicted = conf.sum(2), conf.sum(1)
        f1 = torch.where(support + predicted > 0, 2 * tp / (support + predicted).clamp_min(1), torch.zeros_like(tp))
        present = (support + predicted) > 0
        macro = (f1 * present).sum(1) / present.sum(1).clamp_min(1)
        return {"acc": tp.sum(1) / conf.sum((1, 2)).clamp_min(1), "f1": macro}
    diff = out.float() - y.float().unsqueeze(0)
    err = diff * scale.to(diff) if scale is not None else diff  # in the targets' units
    if meta.task == "seq2seq":
        mask = length_mask(lengths, err.shape[2]).unsqueeze(-1).to(err.dtype)
        count = (mask.sum() * err.shape[-1]).clamp_min(1)
        metrics = {
            "mse": (err.square() * mask).sum((1, 2, 3)) / count,
            "mae": (err.abs() * mask).sum((1, 2, 3)) / count,
        }
        if x is not None and x.shape[-1] == y.shape[-1]:
            power = (y.float().square() * mask).sum((1, 2)).clamp_min(1e-12)  # [N]
            noise = (diff.square() * mask).sum((2, 3)).clamp_min(1e-12)  # [K, N], in y's scale as power is
            snr = (10 * torch.log10(power / noise)).mean(1)
            base_noise = ((x.float() - y.float()).square() * mask).sum((1, 2)).clamp_min(1e-12)
            metrics["snr_db"] = snr
            metrics["snr_gain_db"] = snr - (10 * torch.log10(power / base_noise)).mean()
        return metrics
    return {"mse": err.square().flatten(1).mean(1), "mae": err.abs().flatten(1).mean(1)}
