"""Optimizers, parameter groups and learning-rate schedules.

Parameter groups: the output layer (``model.head`` by convention) learns at ``lr``; the body at
``lr x body_lr_scale`` (seed 003's core vs readout).  Biases and norm weights get no weight decay.

Schedules are a per-step multiplier on each group's base lr, times a plateau factor updated per
epoch.  We compute lr ourselves (instead of chaining torch schedulers) so warmup, cosine,
one-cycle and plateau compose, and so a trial pack can later hold them as K-vectors.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from tunelab.config import TrainConfig

__all__ = ["LRSchedule", "build_optimizer", "param_groups"]


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """Groups body/head x decay/no-decay, each with its base lr and a display name."""
    head = getattr(model, "head", None)
    head_ids = {id(p) for p in head.parameters()} if isinstance(head, nn.Module) else set()
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for p in model.parameters():
        if not p.requires_grad:
            continue
        part = "head" if id(p) in head_ids else "body"
        groups.setdefault((part, p.dim() >= 2), []).append(p)
    out = []
    for (part, decay), params in sorted(groups.items()):
        lr = cfg.lr * (cfg.body_lr_scale if part == "body" else 1.0)
        out.append(
            {
                "params": params,
                "lr": lr,
                "base_lr": lr,
                "weight_decay": cfg.weight_decay if decay else 0.0,
                "name": part,
            }
        )
    return out


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam, AdamW (betas, eps) or SGD (momentum, nesterov) over :func:`param_groups`."""
    groups = param_groups(model, cfg)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam  # Adam: decay as L2 in the gradient
    return cls(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)


class LRSchedule:
    """lr(step) = base_lr x warmup/cosine/one-cycle multiplier x plateau factor (floored at min_lr)."""

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int) -> None:
        self.cfg = cfg
        self.total = max(1, steps_per_epoch * cfg.max_epochs)
        self.warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
        self.plateau = 1.0
        self._best = math.inf
        self._bad = 0

    def multiplier(self, step: int) -> float:
        """Schedule factor at optimizer step ``step`` (0-based), before the plateau factor."""
        kind, warm = self.cfg.schedule, self.warmup
        if kind == "onecycle":  # torch's OneCycleLR defaults: 30% up from 1/25, cosine down to 1/(25e4)
            up = max(1, int(0.3 * self.total))
            if step < up:
                return _cos_between(1 / 25, 1.0, step / up)
            return _cos_between(1.0, 1 / 25e4, min(1.0, (step - up) / max(1, self.total - up)))
        if warm and step < warm:
            return (step + 1) / warm
        if kind == "cosine":
            floor = self.cfg.min_lr / self.cfg.lr if self.cfg.lr else 0.0
            progress = min(1.0, (step - warm) / max(1, self.total - warm))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> None:
        """Set every group's lr for this step."""
        m = self.multiplier(step) * self.plateau
        for g in optimizer.param_groups:
            g["lr"] = max(g["base_lr"] * m, self.cfg.min_lr if self.cfg.schedule == "plateau" else 0.0)

    def on_epoch_end(self, val_loss: float) -> None:
        """ReduceLROnPlateau semantics (mode min, relative threshold 1e-4, cooldown 0)."""
        if self.cfg.schedule != "plateau":
            return
        if val_loss < self._best * (1 - 1e-4) if self._best > 0 else val_loss < self._best:
            self._best, self._bad = val_loss, 0
            return
        self._bad += 1
        if self._bad > self.cfg.plateau_patience:
            self.plateau *= self.cfg.plateau_factor
            self._bad = 0


def _cos_between(start: float, end: float, t: float) -> float:
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * t))
