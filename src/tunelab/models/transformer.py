"""Transformer encoder classifier (seed 000's transformer): pre-LN blocks, key-padding mask."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

from tunelab.config import ModelConfig, shape
from tunelab.data.base import DataMeta, Task
from tunelab.models.base import AttentionPool, Pooling, PortfolioEntry, length_mask, pool
from tunelab.models.layers import MaskedMultiheadAttention, SinusoidalPosition, zero_padding
from tunelab.registry import MODELS

__all__ = ["EncoderBlock", "TransformerClassifier", "TransformerConfig"]


class TransformerConfig(ModelConfig):
    """Linear embedding + position code, stacked self-attention blocks, pooling, linear head."""

    tasks: ClassVar[tuple[Task, ...]] = ("classification", "regression", "seq2seq")
    # Zerveas et al. 2021 (TST) train with Adam lr 1e-3, dropout 0.1, d_model 64 or 128
    portfolio: ClassVar[PortfolioEntry] = PortfolioEntry(
        rank=3,
        groups={"d_model": (64, 128)},
        start={"train.lr": 1e-3, "train.weight_decay": 1e-4, "model.dropout": 0.1, "data.augment.jitter": 0.0},
    )

    name: Literal["transformer"] = "transformer"
    d_model: int = shape(64, "width of every token", ge=1)
    num_heads: int = shape(4, "attention heads (must divide d_model)", ge=1)
    ff_dim: int = shape(128, "hidden width of each feed-forward block", ge=1)
    num_layers: int = shape(2, "stacked encoder blocks", ge=1)
    positional: Literal["sinusoidal", "learned", "none"] = shape(
        "sinusoidal", "position encoding added to the embedding"
    )
    pooling: Pooling = shape("mean", "last valid step, masked mean, or attention")
    dropout: float = Field(
        0.1, ge=0, lt=1, description="on embeddings, attention weights, residual branches and before the head"
    )

    @model_validator(mode="after")
    def _heads_divide(self) -> TransformerConfig:
        if self.d_model % self.num_heads:
            raise ValueError(f"model.num_heads={self.num_heads} must divide model.d_model={self.d_model}")
        return self


class EncoderBlock(nn.Module):
    """Pre-LayerNorm self-attention + GELU feed-forward, each on a residual branch."""

    def __init__(self, d: int, heads: int, ff: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = MaskedMultiheadAttention(d, heads, dropout)
        self.ff = nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        z = self.norm1(h)
        h = h + self.drop(self.attn(z, z, mask))
        return h + self.drop(self.ff(self.norm2(h)))


class TransformerClassifier(nn.Module):
    """Encoder over valid steps only: padded keys are masked in every block."""

    def __init__(self, cfg: TransformerConfig, meta: DataMeta) -> None:
        super().__init__()
        self.embed = nn.Linear(meta.channels, cfg.d_model)
        self.positional = cfg.positional
        if cfg.positional == "learned":
            self.pos_table = nn.Parameter(torch.zeros(max(1, meta.max_len), cfg.d_model))
            nn.init.normal_(self.pos_table, std=0.02)
        self.sinusoid = SinusoidalPosition(cfg.d_model) if cfg.positional == "sinusoidal" else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            EncoderBlock(cfg.d_model, cfg.num_heads, cfg.ff_dim, cfg.dropout) for _ in range(cfg.num_layers)
        )
        self.norm = nn.LayerNorm(cfg.d_model)
        self.pooling = cfg.pooling
        self.attn_pool = AttentionPool(cfg.d_model) if cfg.pooling == "attention" else None
        self.seq2seq = meta.task == "seq2seq"
        self.head = nn.Linear(cfg.d_model, meta.out_dim)

    def _position(self, t: int) -> Tensor | None:
        if self.sinusoid is not None:
            return self.sinusoid(t)
        if self.positional == "learned":
            # steps past the table (only ever padding, or data longer than meta.max_len) reuse its last row
            idx = torch.arange(t, device=self.pos_table.device).clamp_max(self.pos_table.shape[0] - 1)
            return self.pos_table[idx]
        return None

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        t = x.shape[1]
        mask = length_mask(lengths, t)
        h = self.embed(x)
        pos = self._position(t)
        if pos is not None:
            h = h + pos.to(h.dtype)
        h = self.drop(h)
        for block in self.blocks:
            h = block(h, mask)
        h = zero_padding(self.norm(h), mask)
        if self.seq2seq:
            return zero_padding(self.head(self.drop(h)), mask)
        return self.head(self.drop(pool(self.pooling, h, lengths, self.attn_pool)))


@MODELS.register("transformer", config=TransformerConfig)
def build_transformer(cfg: TransformerConfig, meta: DataMeta) -> nn.Module:
    """Transformer encoder (sinusoidal/learned/no positions, key-padding mask) with pooling."""
    return TransformerClassifier(cfg, meta)
