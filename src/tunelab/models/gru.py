"""GRU and LSTM classifiers (seed 004's GRU/LSTM/BiGRU and "deep GRU + LayerNorm")."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field
from torch import Tensor, nn

from tunelab.config import ModelConfig, shape
from tunelab.data.base import DataMeta, Task
from tunelab.models.base import AttentionPool, Pooling, PortfolioEntry, length_mask, pool
from tunelab.models.layers import bidirectional_rnn
from tunelab.registry import MODELS

__all__ = ["GRUConfig", "LSTMConfig", "RNNClassifier"]


class GRUConfig(ModelConfig):
    """Stacked GRU over the sequence, pooled to one vector, then a linear head."""

    tasks: ClassVar[tuple[Task, ...]] = ("classification", "regression", "seq2seq")
    # the recurrent member: 2 layers of 128 (one direction or both), Adam lr 3e-3, dropout 0.2
    portfolio: ClassVar[PortfolioEntry] = PortfolioEntry(
        rank=4,
        groups={"hidden_dim": (128, 64), "bidirectional": (True, False)},
        start={"train.lr": 3e-3, "train.weight_decay": 1e-4, "model.dropout": 0.2, "data.augment.jitter": 0.0},
    )

    name: Literal["gru"] = "gru"
    hidden_dim: int = shape(128, "hidden units per direction", ge=1)
    num_layers: int = shape(2, "stacked recurrent layers", ge=1)
    bidirectional: bool = shape(False, "run a second layer backwards in time")
    layer_norm: bool = shape(False, "LayerNorm after each recurrent layer")
    pooling: Pooling = shape("last", "last valid step, masked mean, or attention")
    dropout: float = Field(0.2, ge=0, lt=1, description="between layers and before the head")


class LSTMConfig(GRUConfig):
    """Stacked LSTM; same options as GRU."""

    name: Literal["lstm"] = "lstm"  # type: ignore[assignment]


class RNNClassifier(nn.Module):
    """Recurrent encoder + pooling + head (a per-step head for seq2seq data).

    Layers run one at a time (so LayerNorm and dropout can sit between them).  A forward-only
    recurrence runs over the padded batch: a step depends only on earlier steps, so every valid
    step is exact and padded steps are masked out — no packing, and no wait for the device to hand
    the lengths to the host.  A bidirectional one's backward direction starts at each sequence's
    own last step (:func:`~tunelab.models.layers.bidirectional_rnn`)."""

    def __init__(self, cell: type[nn.GRU] | type[nn.LSTM], cfg: GRUConfig, meta: DataMeta) -> None:
        super().__init__()
        dirs = 2 if cfg.bidirectional else 1
        width = cfg.hidden_dim * dirs
        self.layers = nn.ModuleList(
            cell(meta.channels if i == 0 else width, cfg.hidden_dim, batch_first=True, bidirectional=cfg.bidirectional)
            for i in range(cfg.num_layers)
        )
        self.norms = nn.ModuleList(
            nn.LayerNorm(width) if cfg.layer_norm else nn.Identity() for _ in range(cfg.num_layers)
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.pooling = cfg.pooling
        self.attn = AttentionPool(width) if cfg.pooling == "attention" else None
        self.bidirectional = cfg.bidirectional
        self.capturable = not cfg.bidirectional  # on a GPU packed sequences read the lengths on the host
        self.seq2seq = meta.task == "seq2seq"  # one output per step instead of one per sequence
        self.head = nn.Linear(width, meta.out_dim)

    def encode(self, x: Tensor, lengths: Tensor) -> Tensor:
        t = x.shape[1]
        h = x
        for i, (rnn, norm) in enumerate(zip(self.layers, self.norms, strict=True)):
            h = bidirectional_rnn(rnn, h, lengths) if self.bidirectional else rnn(h)[0]
            h = norm(h)
            if i < len(self.layers) - 1:
                h = self.drop(h)
        return h * length_mask(lengths, t).unsqueeze(-1).to(h.dtype)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        h = self.encode(x, lengths)
        if self.seq2seq:
            return self.head(self.drop(h)) * length_mask(lengths, h.shape[1]).unsqueeze(-1).to(h.dtype)
        if self.pooling == "last" and self.bidirectional:
            # forward direction ends at the last valid step, backward direction at step 0
            half = h.shape[-1] // 2
            fwd = pool("last", h[..., :half], lengths)
            z = nn.functional.pad(fwd, (0, half)) + nn.functional.pad(h[:, 0, half:], (half, 0))
        else:
            z = pool(self.pooling, h, lengths, self.attn)
        return self.head(self.drop(z))


@MODELS.register("gru", config=GRUConfig)
def build_gru(cfg: GRUConfig, meta: DataMeta) -> nn.Module:
    """GRU encoder (optionally bidirectional, LayerNorm) with last/mean/attention pooling."""
    return RNNClassifier(nn.GRU, cfg, meta)


@MODELS.register("lstm", config=LSTMConfig)
def build_lstm(cfg: LSTMConfig, meta: DataMeta) -> nn.Module:
    """LSTM encoder (optionally bidirectional, LayerNorm) with last/mean/attention pooling."""
    return RNNClassifier(nn.LSTM, cfg, meta)
