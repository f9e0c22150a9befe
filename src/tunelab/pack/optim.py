"""A vectorised optimizer for packs: every value hyperparameter is a K-vector.

One :class:`PackedOptimizer` steps all members at once: Adam and AdamW (members may mix them;
decay is decoupled for AdamW members and added to the gradient for Adam members), or SGD with
per-member momentum and Nesterov.  Learning rate (body and head groups, times each member's
schedule multiplier), weight decay, betas, eps and the clipping norm are per member.  The update
follows ``torch.optim.AdamW``/``Adam``/``SGD`` step for step, so a member trains as it would
alone.  Clipping is per member: each member's gradient norm over its own slices.

Members that have stopped get learning-rate 0 (no update, no decay); their moments may still
move, which nobody reads.  All state lives on the device and a step has no host sync, so the
whole step can be captured in a CUDA graph.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from tunelab.config import TrainConfig
from tunelab.train.optim import LRSchedule, decays, group_lr

__all__ = ["PackedOptimizer", "PackedSchedule", "clip_per_member"]


def _vec(values: Sequence[float], device: torch.device) -> Tensor:
    return torch.tensor([float(v) for v in values], dtype=torch.float32, device=device)


def clip_per_member(params: Sequence[Tensor], max_norms: Tensor) -> Tensor:
    """Scale each member's gradients to at most ``max_norms[k]`` (inf: no clipping); return the
    norms before clipping, ``[K]`` — ``torch.nn.utils.clip_grad_norm_`` per member."""
    grads = [p.grad for p in params if p.grad is not None]
    k = max_norms.shape[0]
    sq = torch.stack([g.reshape(k, -1).float().square().sum(1) for g in grads]).sum(0)
    norms = sq.sqrt()
    coef = (max_norms / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view(k, *([1] * (g.dim() - 1))).to(g.dtype))
    return norms


class PackedOptimizer:
    """Adam/AdamW/SGD over a pack's parameters (each ``[K, ...]``), hyperparameters per member.

    ``head`` parameters learn at ``lr``, the rest at ``lr x body_lr_scale``; parameters with
    fewer than two dimensions per member (biases, norm weights) get no weight decay — the
    grouping of :func:`tunelab.train.optim.param_groups`.
    """

    def __init__(
        self, params: Sequence[nn.Parameter], head: set[int], cfgs: Sequence[TrainConfig], device: torch.device
    ) -> None:
        kinds = {c.optimizer == "sgd" for c in cfgs}
        if len(kinds) > 1:
            raise ValueError("a pack cannot mix SGD with Adam/AdamW members")
        self.sgd = kinds.pop()
        self.params = [p for p in params if p.requires_grad]
        self.is_head = [id(p) in head for p in self.params]
        self.decays = [decays(p, member_dims=1) for p in self.params]
        self.k = len(cfgs)
        wd = _vec([c.weight_decay for c in cfgs], device)
        adamw = _vec([c.optimizer == "adamw" for c in cfgs], device)
        self.wd_decoupled = wd * adamw  # AdamW: p *= 1 - lr * wd
        self.wd_l2 = wd * (1 - adamw) if not self.sgd else wd  # Adam and SGD: g += wd * p
        self.beta1 = _vec([c.beta1 for c in cfgs], device)
        self.beta2 = _vec([c.beta2 for c in cfgs], device)
        self.eps = _vec([c.eps for c in cfgs], device)
        self.momentum = _vec([c.momentum for c in cfgs], device)
        self.nesterov = torch.tensor([c.nesterov and c.momentum > 0 for c in cfgs], device=device)
        self.clip = _vec([c.clip_norm if c.clip_norm is not None else math.inf for c in cfgs], device)
        self.steps = torch.zeros((), device=device)
        self.state: list[dict[str, Tensor]] = [{} for _ in self.params]
        for p, st in zip(self.params, self.state, strict=True):
            if self.sgd:
                st["buf"] = torch.zeros_like(p)
            else:
                st["m"] = torch.zeros_like(p)
                st["v"] = torch.zeros_like(p)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, lrs: Tensor) -> None:
        """One update with per-member learning rates ``lrs [2, K]`` (body, head); 0 freezes a member."""
        self.steps += 1
        k = self.k
        if not self.sgd:
            bc1 = 1 - self.beta1.pow(self.steps)
            bc2_sqrt = (1 - self.beta2.pow(self.steps)).sqrt()
        for p, st, head, decay in zip(self.params, self.state, self.is_head, self.decays, strict=True):
            if p.grad is None:
                continue
            shape = (k, *([1] * (p.dim() - 1)))
            lr = lrs[1 if head else 0].view(shape)
            g = p.grad
            if decay:
                g = g.add(p * self.wd_l2.view(shape))
            if self.sgd:
                buf = st["buf"]
                mom = self.momentum.view(shape)
                first = self.steps == 1  # torch's SGD starts the buffer at the first gradient
                buf.copy_(torch.where(first, g, buf * mom + g))
                g = torch.where(self.nesterov.view(shape), g + mom * buf, torch.where(mom > 0, buf, g))
                p.sub_(lr * g)
                continue
            if decay:
                p.mul_(1 - lr * self.wd_decoupled.view(shape))
            m, v = st["m"], st["v"]
            m.lerp_(g, (1 - self.beta1).view(shape))
            b2 = self.beta2.view(shape)
            v.mul_(b2).add_((1 - b2) * g * g)
            denom = (v.sqrt() / bc2_sqrt.view(shape)).add_(self.eps.view(shape))
            p.sub_((lr / bc1.view(shape)) * m / denom)

    def select_(self, idx: Tensor) -> None:
        """Keep members ``idx`` only (the parameters themselves are compacted by the model)."""
        for name in (
            "wd_decoupled",
            "wd_l2",
            "beta1",
            "beta2",
            "eps",
            "momentum",
            "nesterov",
            "clip",
        ):
            setattr(self, name, getattr(self, name)[idx.to(self.clip.device)])
        for st in self.state:
            for key, value in st.items():
                st[key] = value[idx.to(value.device)].contiguous()
        self.k = len(idx)


class PackedSchedule:
    """Each member's :class:`~tunelab.train.optim.LRSchedule`, read as one ``[2, K]`` tensor of
    learning rates per step (body, head), each from :meth:`LRSchedule.lr` (the solo rule and floor)."""

    def __init__(self, cfgs: Sequence[TrainConfig], steps_per_epoch: int) -> None:
        self.schedules = [LRSchedule(c, steps_per_epoch) for c in cfgs]
        self.base = [(group_lr(c, head=False), group_lr(c, head=True)) for c in cfgs]
        self._constant = all(c.schedule in ("none", "plateau") and not c.warmup_epochs for c in cfgs)
        self._cache: dict[Any, Tensor] = {}

    def lrs(self, step: int, device: torch.device) -> Tensor:
        """``[2, K]`` learning rates at optimizer step ``step``."""
        key = (str(device), tuple(s.plateau for s in self.schedules))
        constant = self._constant and not any(s.annealing for s in self.schedules)
        if constant and key in self._cache:
            return self._cache[key]
        out = torch.tensor(self.host_lrs(step), dtype=torch.float32).T.contiguous()
        # pinned + non-blocking on CUDA: the host does not wait for the queued steps
        out = out.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else out.to(device)
        if constant:
            self._cache = {k: v for k, v in self._cache.items() if k[1] == key[1]}
            self._cache[key] = out
        return out

    def host_lrs(self, step: int) -> list[tuple[float, float]]:
        """(body, head) learning rate of each member at ``step``, as Python floats (for reports)."""
        return [(s.lr(body, step), s.lr(head, step)) for s, (body, head) in zip(self.schedules, self.base, strict=True)]

    def on_epoch_end(self, member: int, val_loss: float, step: int = 0, steps_left: int | None = None) -> None:
        self.schedules[member].on_epoch_end(val_loss, step, steps_left)

    def select(self, idx: Sequence[int]) -> None:
        self.schedules = [self.schedules[i] for i in idx]
        self.base = [self.base[i] for i in idx]
        self._cache = {}
