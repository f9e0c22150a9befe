"""Masked building blocks shared by the model families.

Every block here keeps the padding contract: a padded step never changes a valid one.  Convs
zero padded steps before they run and the caller re-zeroes after every layer, so a non-causal
conv near the end of a sequence sees zeros whether or not extra padding follows it.  Attention
masks padded keys and never produces NaN, even for a row with no valid step.  A bidirectional
recurrent layer's backward direction starts at each row's own last valid step.
"""

from __future__ import annotations

import math
import threading

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

__all__ = [
    "MaskedBatchNorm1d",
    "MaskedConv1d",
    "masked_max_pool",
    "MaskedMultiheadAttention",
    "attention_heads",
    "bidirectional_rnn",
    "SinusoidalPosition",
    "downsample_lengths",
    "masked_downsample",
    "zero_padding",
]


def zero_padding(h: Tensor, mask: Tensor) -> Tensor:
    """``h [B, T, D]`` with padded steps (``mask`` False) set to exactly zero."""
    return h * mask.unsqueeze(-1).to(h.dtype)


def bidirectional_rnn(rnn: nn.Module, h: Tensor, lengths: Tensor) -> Tensor:
    """Outputs ``[B, T, 2H]`` of a one-layer, batch-first, bidirectional ``rnn`` over the padded
    batch ``h [B, T, D]``: the backward direction starts at each row's last valid step, and padded
    steps are zero, as over packed sequences.

    On a GPU, and when traced or exported, it runs over packed sequences (cuDNN; ONNX's GRU/LSTM
    with ``sequence_lens``).  Elsewhere each direction is a forward-only
    pass with the layer's own weights, the backward one over each row's valid steps reversed in
    place: the same numbers, without PyTorch's packed-sequence backward on a CPU, whose cost grows
    faster than the length (batch 128 x 500 steps, hidden 128: 24 s a step packed, 0.75 s so;
    RESULTS.md).  No host sync, no data-dependent shapes."""
    if not isinstance(rnn, (nn.GRU, nn.LSTM)):  # a pack's stacked layer (PackedRNN) masks by length itself
        return rnn(h, lengths=lengths)[0]  # type: ignore[no-any-return]
    t = h.shape[1]
    if h.is_cuda or torch.jit.is_tracing() or _exporting():  # exports map packed layers to ONNX's sequence_lens
        packed = nn.utils.rnn.pack_padded_sequence(h, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = rnn(packed)
        return nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=t)[0]
    steps = torch.arange(t, device=h.device)[None, :]
    mask = steps < lengths[:, None]
    order = torch.where(mask, lengths[:, None] - 1 - steps, steps).unsqueeze(-1)  # valid steps reversed
    fwd = _one_direction(rnn, h, "")
    bwd = _one_direction(rnn, h.gather(1, order.expand_as(h)), "_reverse")
    out = torch.cat([fwd, bwd.gather(1, order.expand_as(bwd))], -1)
    return out * mask.unsqueeze(-1).to(out.dtype)


def _exporting() -> bool:
    is_exporting = getattr(torch.compiler, "is_exporting", None)  # torch >= 2.4
    return bool(is_exporting and is_exporting())


_TEMPLATES = threading.local()  # functional_call swaps a template's weights: one set per thread


def _forward_only(lstm: bool, input_size: int, hidden_size: int) -> nn.Module:
    """A one-direction layer with no weights of its own (they are always passed in)."""
    if not hasattr(_TEMPLATES, "layers"):
        _TEMPLATES.layers = {}
    key = (lstm, input_size, hidden_size)
    if key not in _TEMPLATES.layers:
        _TEMPLATES.layers[key] = (nn.LSTM if lstm else nn.GRU)(input_size, hidden_size, batch_first=True, device="meta")
    return _TEMPLATES.layers[key]  # type: ignore[no-any-return]


def _one_direction(rnn: nn.GRU | nn.LSTM, h: Tensor, suffix: str) -> Tensor:
    names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
    template = _forward_only(isinstance(rnn, nn.LSTM), rnn.input_size, rnn.hidden_size)
    out, _ = functional_call(template, {n: getattr(rnn, n + suffix) for n in names}, (h,))
    return out  # type: ignore[no-any-return]


class MaskedConv1d(nn.Module):
    """Conv over time on ``[B, T, C]`` with 'same' (centred) or causal (left-only) padding.

    Padded steps are zeroed before the conv, so the valid outputs equal those of the
    unpadded sequence; the output itself is not re-masked (callers do that once per layer).
    A caller whose input is zero there already says ``zeroed=True`` and saves a pass over it.
    """

    def __init__(
        self, c_in: int, c_out: int, kernel_size: int, *, dilation: int = 1, causal: bool = False, bias: bool = True
    ) -> None:
        super().__init__()
        total = (kernel_size - 1) * dilation
        # causal: every output sees only the past; otherwise centred, the extra step (even k) on the right
        self.pad = (total, 0) if causal else (total // 2, total - total // 2)
        self.conv = nn.Conv1d(c_in, c_out, kernel_size, dilation=dilation, bias=bias)

    def forward(self, h: Tensor, mask: Tensor, zeroed: bool = False) -> Tensor:
        z = (h if zeroed else zero_padding(h, mask)).transpose(1, 2)
        return self.conv(F.pad(z, self.pad)).transpose(1, 2)


class MaskedBatchNorm1d(nn.Module):
    """BatchNorm over channels of ``[B, T, C]`` whose batch statistics count valid steps only.

    Standard BatchNorm would average the zeros of padded steps into its mean and variance, so a
    batch's statistics (and the running ones) would depend on how much padding it carries.  Here
    training mode normalises with the mean/variance over valid ``(b, t)`` positions and updates the
    running estimates (unbiased variance) with ``momentum``; evaluation uses the running ones, a
    per-step affine map, so padding can never leak.  Statistics are computed in float32.
    """

    running_mean: Tensor
    running_var: Tensor

    def __init__(self, channels: int, *, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        if self.training:
            mean, var = masked_moments(h.reshape(1, -1, h.shape[-1]), mask.reshape(1, -1))
            mean, var = mean[0], var[0]
            with torch.no_grad():
                n = mask.sum().clamp_min(2).to(var.dtype)
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(var.detach() * n / (n - 1), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        scale = self.weight * torch.rsqrt(var + self.eps)
        return (h.float() * scale + (self.bias - mean * scale)).to(h.dtype)


def masked_moments(h: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and (biased) variance over the valid rows of ``h [G, N, C]`` per group, in float32:
    ``mask [G, N]`` marks the valid rows; returns two ``[G, C]`` tensors."""
    m = mask.unsqueeze(-1).to(torch.float32)
    hf = h.float()
    n = m.sum(1).clamp_min(1.0)
    mean = (hf * m).sum(1) / n
    var = (((hf - mean.unsqueeze(1)) * m) ** 2).sum(1) / n
    return mean, var


def masked_max_pool(h: Tensor, mask: Tensor, kernel_size: int = 3) -> Tensor:
    """Max over a centred window of ``kernel_size`` (odd) steps of ``h [B, T, D]``, valid steps only.

    Padded steps count as -inf, like the implicit padding beyond the end, so a valid output never
    depends on how much padding follows; padded outputs are zero.
    """
    z = h.masked_fill(~mask.unsqueeze(-1), float("-inf")).transpose(1, 2)
    out = F.max_pool1d(z, kernel_size, stride=1, padding=kernel_size // 2).transpose(1, 2)
    return out.masked_fill(~mask.unsqueeze(-1), 0.0)


def downsample_lengths(lengths: Tensor, factor: int) -> Tensor:
    """Valid length after downsampling by ``factor`` (a window with any valid step is valid)."""
    return torch.div(lengths + factor - 1, factor, rounding_mode="floor")


def masked_downsample(h: Tensor, mask: Tensor, factor: int) -> Tensor:
    """Average ``h [B, T, D]`` over windows of ``factor`` steps, counting valid steps only.

    ``T`` is padded up to a multiple of ``factor``; the result has ``ceil(T / factor)`` steps.
    """
    b, t, d = h.shape
    extra = (-t) % factor
    m = mask.to(h.dtype).unsqueeze(-1)
    hm = F.pad(h * m, (0, 0, 0, extra)).view(b, -1, factor, d).sum(2)
    count = F.pad(m, (0, 0, 0, extra)).view(b, -1, factor, 1).sum(2)
    return hm / count.clamp_min(1.0)


class SinusoidalPosition(nn.Module):
    """Fixed sine/cosine position codes (Vaswani et al.), computed for any length on the fly."""

    freq: Tensor

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
        self.register_buffer("freq", freq, persistent=False)

    def forward(self, t: int) -> Tensor:
        pos = torch.arange(t, device=self.freq.device, dtype=torch.float32)[:, None] * self.freq[None, :]
        pe = torch.zeros(t, self.dim, device=self.freq.device)
        pe[:, 0::2] = torch.sin(pos)
        pe[:, 1::2] = torch.cos(pos[:, : self.dim // 2])
        return pe


class MaskedMultiheadAttention(nn.Module):
    """Multi-head attention of queries ``[B, Tq, D]`` over keys/values ``[B, Tk, D]``.

    Padded keys (``key_mask`` False) get zero weight.  A row with no valid key would give
    softmax over nothing (NaN), so such rows attend to key 0 instead: their output is finite
    and, belonging to an empty sequence, masked downstream anyway.
    """

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, query: Tensor, key: Tensor, key_mask: Tensor) -> Tensor:
        b, tq, d = query.shape
        q, k, v, allowed = attention_heads(self.q, self.kv, self.num_heads, query, key, key_mask)
        attn = F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(attn.transpose(1, 2).reshape(b, tq, d))


def attention_heads(
    q_proj: nn.Module, kv_proj: nn.Module, h: int, query: Tensor, key: Tensor, key_mask: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-head ``q, k, v`` ``[B, H, T, D/H]`` from the ``q``/``kv`` projections, and the
    ``[B, 1, 1, Tk]`` mask of keys each query may attend to (key 0 for a row with no valid key)."""
    b, tq, d = query.shape
    q = q_proj(query).view(b, tq, h, d // h).transpose(1, 2)
    k, v = kv_proj(key).view(b, key.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4)
    empty = ~key_mask.any(1, keepdim=True)
    first = torch.zeros_like(key_mask)
    first[:, 0] = True
    return q, k, v, (key_mask | (empty & first))[:, None, None, :]
