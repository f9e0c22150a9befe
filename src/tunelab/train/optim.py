"""Optimizers, parameter groups and learning-rate schedules.

Parameter groups: the output layer (``model.head`` by convention) learns at ``lr``; the body at
``lr x body_lr_scale`` (seed 003's core vs readout).  Biases and norm weights get no weight decay.

Schedules are a per-step multiplier on each group's base lr, times a plateau factor updated per
epoch, times the deadline's anneal (a linear decay to zero at a known stop, see
:meth:`LRSchedule.anneal`).  We compute lr ourselves (instead of chaining torch schedulers) so
warmup, cosine, one-cycle and plateau compose, and so a trial pack can hold them as K-vectors.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from tunelab.config import TrainConfig

__all__ = ["LRSchedule", "build_optimizer", "decays", "group_lr", "head_param_ids", "param_groups"]


def head_param_ids(model: nn.Module) -> set[int]:
    """Ids of the output layer's parameters: ``model.head`` by convention (none if absent)."""
    head = getattr(model, "head", None)
    return {id(p) for p in head.parameters()} if isinstance(head, nn.Module) else set()


def group_lr(cfg: TrainConfig, head: bool) -> float:
    """Base learning rate of a group: ``lr`` for the head, ``lr x body_lr_scale`` for the body."""
    return cfg.lr * (1.0 if head else cfg.body_lr_scale)


def decays(p: torch.Tensor, member_dims: int = 0) -> bool:
    """Whether a parameter gets weight decay: matrices and kernels do, biases and norm weights
    (fewer than two dimensions, not counting ``member_dims`` leading pack dimensions) do not."""
    return p.dim() - member_dims >= 2


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """Groups body/head x decay/no-decay, each with its base lr and a display name."""
    head_ids = head_param_ids(model)
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for p in model.parameters():
        if not p.requires_grad:
            continue
        part = "head" if id(p) in head_ids else "body"
        groups.setdefault((part, decays(p)), []).append(p)
    out = []
    for (part, decay), params in sorted(groups.items()):
        lr = group_lr(cfg, part == "head")
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


def build_optimizer(model: nn.Module, cfg: TrainConfig, capturable: bool = False) -> torch.optim.Optimizer:
    """Adam, AdamW (betas, eps) or SGD (momentum, nesterov) over :func:`param_groups`.

    ``capturable`` (Adam/AdamW on CUDA, for a step captured in a CUDA graph): torch's fused
    capturable kernel, each group's learning rate a device tensor that :meth:`LRSchedule.apply`
    writes in place.
    """
    groups = param_groups(model, cfg)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam  # Adam: decay as L2 in the gradient
    if capturable:
        for g in groups:
            g["lr"] = torch.tensor(g["lr"], device=g["params"][0].device)
        return cls(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, fused=True, capturable=True)
    return cls(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)


class LRSchedule:
    """lr(step) = base_lr x warmup/cosine/one-cycle multiplier x plateau factor x the deadline's
    anneal (floored at min_lr)."""

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int) -> None:
        self.cfg = cfg
        self.total = max(1, steps_per_epoch * cfg.max_epochs)
        self.warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
        self.plateau = 1.0
        self.floor = cfg.min_lr if cfg.schedule == "plateau" else 0.0  # the plateau floor
        self._best = math.inf
        self._bad = 0
        self._anneal: tuple[int, float, int] | None = None  # (from step, factor there, zero at step)

    @property
    def annealing(self) -> bool:
        return self._anneal is not None

    def anneal(self, step: int, steps_left: int) -> None:
        """From ``step`` on, decay linearly from the present anneal factor to zero at
        ``step + steps_left`` (called again each epoch with a fresh estimate)."""
        self._anneal = (step, self.anneal_factor(step), step + max(1, steps_left))

    def anneal_factor(self, step: int) -> float:
        """The deadline's factor at ``step``: 1 until :meth:`anneal` is called."""
        if self._anneal is None:
            return 1.0
        start, factor, end = self._anneal
        return factor * min(1.0, max(0.0, (end - step) / (end - start)))

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

    def lr(self, base_lr: float, step: int) -> float:
        """A group's learning rate at ``step``: base x schedule x plateau factor, at least the floor."""
        return max(base_lr * (self.multiplier(step) * self.plateau * self.anneal_factor(step)), self.floor)

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> None:
        """Set every group's lr for this step (in place where it is a device tensor: no host sync)."""
        for g in optimizer.param_groups:
            lr = self.lr(g["base_lr"], step)
            if isinstance(g["lr"], torch.Tensor):
                if g.get("lr_written") != lr:  # a kernel launch per step only while the rate moves
                    g["lr"].fill_(lr)
                    g["lr_written"] = lr
            else:
                g["lr"] = lr

    def on_epoch_end(self, val_loss: float, step: int = 0, steps_left: int | None = None) -> None:
        """ReduceLROnPlateau semantics (mode min, relative threshold 1e-4, cooldown 0); with
        ``steps_left`` (a known stop that near, at optimizer step ``step``), :meth:`anneal` to it."""
        if steps_left is not None:
            self.anneal(step, steps_left)
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
