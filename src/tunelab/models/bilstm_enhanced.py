"""Seed 000's BiLSTM, standard or enhanced: every enhancement is its own config switch.

Enhancements (all off = a standard BiLSTM with last-state pooling, see :data:`STANDARD`):
feature dropout (whole channels), temporal dropout (whole steps), a temporal conv block,
gated residual connections around each recurrent layer, cross-resolution attention (every step
attends over a downsampled copy of the sequence), and multi-head attention pooling.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor, nn

from tunelab.config import ModelConfig, shape
from tunelab.data.base import DataMeta
from tunelab.models.base import AttentionPool, last_valid, length_mask
from tunelab.models.layers import (
    MaskedConv1d,
    MaskedMultiheadAttention,
    bidirectional_rnn,
    downsample_lengths,
    masked_downsample,
    zero_padding,
)
from tunelab.registry import MODELS

__all__ = ["ENHANCED", "STANDARD", "BiLSTMEnhanced", "BiLSTMEnhancedConfig", "variant"]


class BiLSTMEnhancedConfig(ModelConfig):
    """Bidirectional LSTM with switchable enhancements (the defaults are the enhanced model)."""

    name: Literal["bilstm_enhanced"] = "bilstm_enhanced"
    hidden_dim: int = shape(64, "LSTM units per direction", ge=1)
    num_layers: int = shape(2, "stacked BiLSTM layers", ge=1)
    attention_pooling: bool = shape(True, "multi-head attention pooling; off: last states of both directions")
    num_heads: int = shape(
        4, "heads of attention pooling and cross-resolution attention (must divide 2 x hidden_dim)", ge=1
    )
    temporal_conv: bool = shape(True, "residual conv block over time before the LSTM")
    conv_kernel: int = shape(5, "kernel size of the temporal conv block", ge=1)
    gated_residual: bool = shape(True, "sigmoid-gated residual + LayerNorm around each BiLSTM layer")
    cross_resolution: bool = shape(True, "attend from every step over a downsampled copy of the sequence")
    downsample: int = shape(4, "time downsampling factor of the cross-resolution copy", ge=2)
    feature_dropout: float = Field(0.1, ge=0, lt=1, description="drop whole input channels (per sample); 0 = off")
    temporal_dropout: float = Field(0.1, ge=0, lt=1, description="drop whole input time steps (per sample); 0 = off")
    dropout: float = Field(0.3, ge=0, lt=1, description="between layers, in attention and before the head")

    #: a field that matters only when one of these switches is on (the tune header counts by it)
    used_when: ClassVar[dict[str, tuple[str, ...]]] = {
        "num_heads": ("attention_pooling", "cross_resolution"),
        "conv_kernel": ("temporal_conv",),
        "downsample": ("cross_resolution",),
    }

    @model_validator(mode="after")
    def _heads_divide(self) -> BiLSTMEnhancedConfig:
        if (self.attention_pooling or self.cross_resolution) and (2 * self.hidden_dim) % self.num_heads:
            raise ValueError(f"model.num_heads={self.num_heads} must divide 2 x model.hidden_dim={2 * self.hidden_dim}")
        return self


#: ``model.*`` values of seed 000's ``--standard`` model: every enhancement off.
STANDARD: dict[str, Any] = {
    "attention_pooling": False,
    "temporal_conv": False,
    "gated_residual": False,
    "cross_resolution": False,
    "feature_dropout": 0.0,
    "temporal_dropout": 0.0,
}
#: ``model.*`` values of seed 000's ``--enhanced`` model (the config defaults).
ENHANCED: dict[str, Any] = {k: BiLSTMEnhancedConfig.model_fields[k].default for k in STANDARD}


def variant(kind: Literal["standard", "enhanced"]) -> dict[str, Any]:
    """Dotted overrides (``model.temporal_conv`` → value) that select seed 000's variant."""
    values = STANDARD if kind == "standard" else ENHANCED
    return {"model.name": "bilstm_enhanced", **{f"model.{k}": v for k, v in values.items()}}


class BiLSTMEnhanced(nn.Module):
    """The enhanced BiLSTM; each block below exists only when its switch is on."""

    def __init__(self, cfg: BiLSTMEnhancedConfig, meta: DataMeta) -> None:
        super().__init__()
        width = 2 * cfg.hidden_dim
        self.cfg = cfg
        self.capturable = False  # on a GPU packed sequences read the lengths on the host: no CUDA graph
        # the conv block and gated residuals need the input at the LSTM's width
        self.proj = nn.Linear(meta.channels, width) if cfg.temporal_conv or cfg.gated_residual else None
        self.conv = MaskedConv1d(width, width, cfg.conv_kernel) if cfg.temporal_conv else None
        in_dim = width if self.proj is not None else meta.channels
        self.lstms = nn.ModuleList(
            nn.LSTM(in_dim if i == 0 else width, cfg.hidden_dim, batch_first=True, bidirectional=True)
            for i in range(cfg.num_layers)
        )
        if cfg.gated_residual:
            self.gates = nn.ModuleList(nn.Linear(2 * width, width) for _ in range(cfg.num_layers))
            self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(cfg.num_layers))
        if cfg.cross_resolution:
            self.cross = MaskedMultiheadAttention(width, cfg.num_heads, cfg.dropout)
            self.cross_norm = nn.LayerNorm(width)
        self.attn_pool = AttentionPool(width, cfg.num_heads) if cfg.attention_pooling else None
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(width, meta.out_dim)

    def _input_dropout(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        # dropout1d zeroes whole "channels" of [B, ch, L]: channels of [B, C, T], steps of [B, T, C]
        x = F.dropout1d(x.transpose(1, 2), self.cfg.feature_dropout).transpose(1, 2)
        return F.dropout1d(x, self.cfg.temporal_dropout)

    def encode(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Per-step features ``[B, T, 2H]``, zero at padded steps."""
        t = x.shape[1]
        mask = length_mask(lengths, t)
        h = zero_padding(self._input_dropout(x), mask)
        if self.proj is not None:
            h = zero_padding(self.proj(h), mask)
        if self.conv is not None:
            h = zero_padding(h + F.gelu(self.conv(h, mask)), mask)
        for i, lstm in enumerate(self.lstms):
            out = self.drop(bidirectional_rnn(lstm, h, lengths))
            if self.cfg.gated_residual:
                gate = torch.sigmoid(self.gates[i](torch.cat([out, h], dim=-1)))
                out = self.norms[i](gate * out + (1 - gate) * h)
            h = zero_padding(out, mask)
        if self.cfg.cross_resolution:
            f = self.cfg.downsample
            coarse = masked_downsample(h, mask, f)
            coarse_mask = length_mask(downsample_lengths(lengths, f), coarse.shape[1])
            h = zero_padding(self.cross_norm(h + self.drop(self.cross(h, coarse, coarse_mask))), mask)
        return h

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        h = self.encode(x, lengths)
        if self.attn_pool is not None:
            z = self.attn_pool(h, length_mask(lengths, h.shape[1]))
        else:  # forward direction ends at the last valid step, backward direction at step 0
            half = h.shape[-1] // 2
            z = torch.cat([last_valid(h[..., :half], lengths), h[:, 0, half:]], dim=-1)
        return self.head(self.drop(z))


@MODELS.register("bilstm_enhanced", config=BiLSTMEnhancedConfig, variants={"standard": STANDARD})
def build_bilstm_enhanced(cfg: BiLSTMEnhancedConfig, meta: DataMeta) -> nn.Module:
    """BiLSTM with switchable attention pooling, input dropouts, conv block, gated residuals, cross-resolution attention."""
    return BiLSTMEnhanced(cfg, meta)
