"""Shared pieces of the model contract: masks, pooling, the classification head.

Contract: a builder ``fn(cfg: FamilyConfig, meta: DataMeta) -> nn.Module``; the module's
``forward(x [B, T, C], lengths [B], **extras)`` returns ``[B, out]`` (or ``[B, T, C_out]`` for
seq2seq).  Padding is masked, never learned: outputs must not change when padding is appended.

Optional class attributes of a family's config class (plain ``ClassVar``s, not fields):
``tasks`` — the data tasks the family builds for (default :data:`DEFAULT_TASKS`; add
``"seq2seq"`` for per-step outputs); ``example_dataset`` — a registered dataset name the model
needs for its inputs (a plugin whose batches carry extra tensors), used by the model tests,
which treat every extras dimension after the first that equals ``T`` as per-step (padded and
trimmed along with ``x``); ``portfolio`` — a :class:`PortfolioEntry`: the family joins
``tunelab tune``'s default portfolio with its shape groups and known-good start (read from the
class itself, never inherited: ``LSTMConfig`` subclasses ``GRUConfig`` but is not in it).
Optional model method: ``extra_scalars() -> dict[str, float]`` (learned constants and the
like); the trainer logs each as ``extra/<name>`` every epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from tunelab.data.base import DataMeta, Task
from tunelab.errors import UserError

__all__ = [
    "DEFAULT_TASKS",
    "AttentionPool",
    "PortfolioEntry",
    "Pooling",
    "check_task",
    "last_valid",
    "length_mask",
    "masked_mean",
    "pool",
    "portfolio_entry",
    "supported_tasks",
]

DEFAULT_TASKS: tuple[Task, ...] = ("classification", "regression")

Pooling = Literal["last", "mean", "attention"]


def length_mask(lengths: Tensor, t: int) -> Tensor:
    """Bool ``[B, T]``, True on valid steps."""
    return torch.arange(t, device=lengths.device)[None, :] < lengths[:, None]


def masked_mean(h: Tensor, mask: Tensor) -> Tensor:
    """Mean over valid steps of ``h [B, T, D]``."""
    m = mask.unsqueeze(-1).to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp_min(1.0)


def last_valid(h: Tensor, lengths: Tensor) -> Tensor:
    """``h[b, lengths[b] - 1]`` for each b."""
    idx = (lengths - 1).clamp_min(0).view(-1, 1, 1).expand(-1, 1, h.shape[-1])
    return h.gather(1, idx).squeeze(1)


class AttentionPool(nn.Module):
    """Multi-head attention pooling: a learned query per head attends over valid steps."""

    def __init__(self, dim: int, num_heads: int = 1) -> None:
        super().__init__()
        self.score = nn.Linear(dim, num_heads)
        self.num_heads = num_heads
        self.proj = nn.Linear(dim * num_heads, dim) if num_heads > 1 else nn.Identity()

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        # the most negative finite value, not -inf: padded steps still get exactly zero weight,
        # but a row with no valid step gets uniform weights instead of NaN
        scores = self.score(h).float()
        scores = scores.masked_fill(~mask.unsqueeze(-1), torch.finfo(scores.dtype).min)  # [B, T, H]
        weights = torch.softmax(scores, dim=1).to(h.dtype)
        pooled = torch.einsum("bth,btd->bhd", weights, h).flatten(1)  # [B, H*D]
        return self.proj(pooled)


def pool(kind: Pooling, h: Tensor, lengths: Tensor, attn: nn.Module | None = None) -> Tensor:
    """Reduce ``h [B, T, D]`` to ``[B, D]`` over valid steps."""
    mask = length_mask(lengths, h.shape[1])
    if kind == "last":
        return last_valid(h, lengths)
    if kind == "mean":
        return masked_mean(h, mask)
    assert attn is not None, "attention pooling needs its module"
    return attn(h, mask)


def supported_tasks(config_cls: type) -> tuple[Task, ...]:
    """The data tasks a family's config class declares (``tasks`` class attribute)."""
    return tuple(getattr(config_cls, "tasks", DEFAULT_TASKS))


@dataclass(frozen=True)
class PortfolioEntry:
    """How a family joins the default portfolio (``tunelab tune`` with no ``--model``).

    ``groups`` maps shape fields to the few values the portfolio tries; the family's shape
    groups are their product, every other shape field keeps the config's default (the paper's),
    so trials fall into a few groups that pack.  ``start`` is the known-good configuration's
    value parameters (dotted keys, inside the portfolio's ranges), queued as the family's first
    trial with the first value of each group field.  ``rank`` orders the families' first trials
    (lower first: the strongest and cheapest lead, so a short budget still runs them)."""

    rank: int
    groups: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    start: dict[str, Any] = field(default_factory=dict)


def portfolio_entry(config_cls: type) -> PortfolioEntry | None:
    """The family's own :class:`PortfolioEntry` (None when its config class declares none itself)."""
    entry = vars(config_cls).get("portfolio")
    return entry if isinstance(entry, PortfolioEntry) else None


def check_task(cfg: Any, meta: DataMeta) -> None:
    """Raise a UserError when family ``cfg.name`` cannot build for ``meta.task``."""
    tasks = supported_tasks(type(cfg))
    if meta.task not in tasks:
        raise UserError(
            f"model.name={cfg.name} does not support {meta.task} data ({meta.name}); "
            f"it handles {', '.join(tasks)} — pick another model family"
        )
