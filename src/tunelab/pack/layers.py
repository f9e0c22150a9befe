"""Stacked layers: K independent copies of a layer, computed as one batched operation.

Layout.  Every activation inside a packed model keeps the member dimension folded into the batch,
member-major: ``[K * B, ...]`` where rows ``k * B ... (k + 1) * B - 1`` belong to member ``k``.
Everything a model does per sample (masks, pooling, padding, attention over its own steps) then
works unchanged; only layers with parameters need to know about members, and they reshape to
``[K, B * ..., features]`` for one batched matmul, grouped convolution or per-member affine.

Parameters keep the name and the layout of the ordinary layer they replace, with a leading K:
``weight [K, out, in]`` for a linear layer.  So a packed model's ``state_dict()`` is the stack of
its members' ordinary state dicts, key for key, and extracting member ``k`` is ``v[k]``.

Value hyperparameters that live in layers (dropout rates) are K-vectors (buffers that are not
saved), so members may differ in them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tunelab.models.layers import MaskedBatchNorm1d, MaskedMultiheadAttention, attention_heads, masked_moments
from tunelab.pack.recurrence import GRU_STEPS, LSTM_STEPS, StepFunctions, recurrence

__all__ = [
    "PackedAttention",
    "PackedConv1d",
    "PackedConvTranspose1d",
    "PackedDropout",
    "PackedLayer",
    "PackedLayerNorm",
    "PackedMaskedBatchNorm",
    "PackedLinear",
    "PackedRNN",
]


class PackedLayer(nn.Module):
    """Base of the stacked layers: ``k`` members; parameters and buffers lead with K."""

    k: int

    def _stack_params(self, mods: Sequence[nn.Module]) -> None:
        """Register each parameter of the ordinary layers, stacked, under its own name."""
        self.k = len(mods)
        for name, p in mods[0].named_parameters(recurse=False):
            stacked = torch.stack([dict(m.named_parameters(recurse=False))[name].detach() for m in mods])
            self.register_parameter(name, nn.Parameter(stacked.clone(), requires_grad=p.requires_grad))

    def select_(self, idx: Tensor) -> None:
        """Keep members ``idx`` only (compaction), in place: parameters stay the same objects."""
        for p in self.parameters(recurse=False):
            p.data = p.data[idx.to(p.device)].contiguous()
        for name, b in self.named_buffers(recurse=False):
            setattr(self, name, b[idx.to(b.device)].contiguous())
        self.k = len(idx)

    def _param(self, name: str) -> Tensor:
        return self._parameters[name]  # type: ignore[return-value]

    def _members(self, x: Tensor, features: int) -> Tensor:
        """``[K * B, ..., F]`` → ``[K, B * ..., F]`` (a view when ``x`` is contiguous)."""
        return x.reshape(self.k, -1, features)


class PackedLinear(PackedLayer):
    """K linear layers: one batched matmul ``[K, N, in] @ [K, in, out]``."""

    def __init__(self, mods: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.in_features, self.out_features = mods[0].in_features, mods[0].out_features
        self._stack_params(mods)

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        xk = self._members(x, self.in_features)
        w = self._param("weight").transpose(1, 2)
        bias = self._parameters.get("bias")
        out = torch.baddbmm(bias.unsqueeze(1), xk, w) if bias is not None else torch.bmm(xk, w)
        return out.reshape(*lead, self.out_features)


class PackedLayerNorm(PackedLayer):
    """LayerNorm over the last dimension, with a per-member affine."""

    def __init__(self, mods: Sequence[nn.LayerNorm]) -> None:
        super().__init__()
        if len(mods[0].normalized_shape) != 1:
            raise NotImplementedError("packed LayerNorm normalises the last dimension only")
        self.dim, self.eps = mods[0].normalized_shape[0], mods[0].eps
        self._stack_params(mods)

    def forward(self, x: Tensor) -> Tensor:
        y = F.layer_norm(x, (self.dim,), None, None, self.eps)
        w = self._parameters.get("weight")
        if w is None:
            return y
        yk = self._members(y, self.dim)
        b = self._parameters.get("bias")
        out = torch.addcmul(b.unsqueeze(1), yk, w.unsqueeze(1)) if b is not None else yk * w.unsqueeze(1)
        return out.reshape(x.shape)


class PackedMaskedBatchNorm(PackedLayer):
    """:class:`MaskedBatchNorm1d` with per-member statistics: each member normalises its own rows
    of the folded batch by their valid steps and keeps its own running mean and variance."""

    running_mean: Tensor
    running_var: Tensor

    def __init__(self, mods: Sequence[MaskedBatchNorm1d]) -> None:
        super().__init__()
        self.momentum, self.eps = mods[0].momentum, mods[0].eps
        self._stack_params(mods)
        for name in ("running_mean", "running_var"):
            self.register_buffer(name, torch.stack([getattr(m, name).detach() for m in mods]).clone())

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        c = h.shape[-1]
        hk = self._members(h, c)  # [K, B * T, C]
        if self.training:
            mk = mask.reshape(self.k, -1)
            mean, var = masked_moments(hk, mk)
            with torch.no_grad():
                n = mk.sum(1, keepdim=True).clamp_min(2).to(var.dtype)
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(var.detach() * n / (n - 1), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        scale = self._param("weight") * torch.rsqrt(var + self.eps)  # [K, C]
        shift = self._param("bias") - mean * scale
        out = hk.float() * scale.unsqueeze(1) + shift.unsqueeze(1)
        return out.to(h.dtype).reshape(h.shape)


def _rates(values: Sequence[float]) -> Tensor:
    return torch.tensor([float(v) for v in values], dtype=torch.float32)


class PackedDropout(PackedLayer):
    """Dropout with a per-member rate: one uniform draw, compared with each member's rate."""

    rates: Tensor

    def __init__(self, rates: Sequence[float]) -> None:
        super().__init__()
        self.k = len(rates)
        self.register_buffer("rates", _rates(rates), persistent=False)
        self._active = any(r > 0 for r in rates)

    def select_(self, idx: Tensor) -> None:
        super().select_(idx)
        self._active = bool((self.rates > 0).any())

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or not self._active:
            return x
        return member_dropout(x, self.rates, self.k)


def member_dropout(x: Tensor, rates: Tensor, k: int) -> Tensor:
    """Inverted dropout of ``x [K * B, ...]`` with member k's rate ``rates[k]``.  The draw and the
    rates stay fp32 under bf16 autocast (in bf16, 0.2 is 0.2002 and the draws are coarse)."""
    p = rates.float().view(k, *([1] * x.dim()))
    xk = x.reshape(k, x.shape[0] // k, *x.shape[1:])
    keep = torch.rand_like(xk, dtype=torch.float32) >= p
    scale = torch.where(p < 1, 1 / (1 - p).clamp_min(1e-12), torch.zeros_like(p))
    return (xk * (keep * scale).to(x.dtype)).reshape(x.shape)


class PackedConv1d(PackedLayer):
    """K Conv1d layers as one grouped convolution (groups = K) over ``[B, K * C, T]``."""

    def __init__(self, mods: Sequence[nn.Conv1d]) -> None:
        super().__init__()
        m = mods[0]
        if m.groups != 1 or m.padding_mode != "zeros" or isinstance(m.padding, str):
            raise NotImplementedError("packed Conv1d supports groups=1, numeric zero padding")
        self.c_in, self.c_out = m.in_channels, m.out_channels
        self.stride, self.padding, self.dilation = m.stride, m.padding, m.dilation
        self._stack_params(mods)

    def forward(self, x: Tensor) -> Tensor:
        kb, c, t = x.shape
        b = kb // self.k
        xg = x.reshape(self.k, b, c, t).transpose(0, 1).reshape(b, self.k * c, t)
        w = self._param("weight").reshape(self.k * self.c_out, self.c_in, -1)
        b_stack = self._parameters.get("bias")
        bias = b_stack.reshape(-1) if b_stack is not None else None
        y = F.conv1d(xg, w, bias, self.stride, self.padding, self.dilation, groups=self.k)
        return y.reshape(b, self.k, self.c_out, -1).transpose(0, 1).reshape(kb, self.c_out, -1)


class PackedConvTranspose1d(PackedLayer):
    """K ConvTranspose1d layers as one grouped transposed convolution (groups = K)."""

    def __init__(self, mods: Sequence[nn.ConvTranspose1d]) -> None:
        super().__init__()
        m = mods[0]
        if m.groups != 1 or m.padding_mode != "zeros":
            raise NotImplementedError("packed ConvTranspose1d supports groups=1, zero padding")
        self.c_in, self.c_out = m.in_channels, m.out_channels
        self.stride, self.padding, self.output_padding, self.dilation = (
            m.stride,
            m.padding,
            m.output_padding,
            m.dilation,
        )
        self._stack_params(mods)

    def forward(self, x: Tensor) -> Tensor:
        kb, c, t = x.shape
        b = kb // self.k
        xg = x.reshape(self.k, b, c, t).transpose(0, 1).reshape(b, self.k * c, t)
        w = self._param("weight").reshape(self.k * self.c_in, self.c_out, -1)
        b_stack = self._parameters.get("bias")
        bias = b_stack.reshape(-1) if b_stack is not None else None
        y = F.conv_transpose1d(xg, w, bias, self.stride, self.padding, self.output_padding, self.k, self.dilation)  # type: ignore[arg-type]
        return y.reshape(b, self.k, self.c_out, -1).transpose(0, 1).reshape(kb, self.c_out, -1)


# --------------------------------------------------------------------------- recurrent


class PackedRNN(PackedLayer):
    """K single-layer GRUs or LSTMs (either direction or both) over ``[K * B, T, D]``.

    The input projection of every step is one batched matmul before the loop; the loop does the
    hidden projection (one ``baddbmm`` for all members) and the gate arithmetic.  The projected
    inputs are split over time with ``unbind`` — not sliced per step, which would make every
    step's backward allocate a full-size zero gradient.  The loop is the recurrence of
    :mod:`tunelab.pack.recurrence` (hand-written backward, one weight-gradient matmul for all
    steps).  A member's state stops updating after its sequence ends (mask by length), and outputs
    at padded steps are zero, as with packed sequences.  Called with a ``PackedSequence`` (how the
    model families call ``nn.GRU``), it unpacks, runs and packs again; called with a padded tensor
    it needs ``lengths``.
    """

    def __init__(self, mods: Sequence[nn.GRU | nn.LSTM]) -> None:
        super().__init__()
        m = mods[0]
        if m.num_layers != 1 or not m.batch_first or getattr(m, "proj_size", False):
            raise NotImplementedError("packed RNN layers are single-layer, batch_first, without projection")
        if not m.bias:
            raise NotImplementedError("packed RNN layers need biases")
        self.mode = "lstm" if isinstance(m, nn.LSTM) else "gru"
        self.hidden = m.hidden_size
        self.input_size = m.input_size
        self.dirs = 2 if m.bidirectional else 1
        self._stack_params(mods)
        self.plain: StepFunctions = LSTM_STEPS if self.mode == "lstm" else GRU_STEPS  # the cell's per-step functions
        self.fns = self.plain  # torch.compile may replace them (training shapes only)
        self.n_state = 2 if self.mode == "lstm" else 1  # an LSTM also carries its cell

    def _dir_param(self, kind: str, d: int) -> Tensor:
        return self._param(f"{kind}_l0{'_reverse' if d else ''}")

    def forward(
        self, x: Tensor | nn.utils.rnn.PackedSequence, hx: Any = None, *, lengths: Tensor | None = None
    ) -> tuple[Any, None]:
        if isinstance(x, nn.utils.rnn.PackedSequence):
            padded, lens = nn.utils.rnn.pad_packed_sequence(x, batch_first=True)
            out = self.run(padded, lens.to(padded.device))
            return nn.utils.rnn.pack_padded_sequence(out, lens, batch_first=True, enforce_sorted=False), None
        assert lengths is not None, "a padded input needs lengths"
        return self.run(x, lengths), None

    def run(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Outputs ``[K * B, T, dirs * H]`` of padded input ``x [K * B, T, D]``."""
        kb, t, d_in = x.shape
        k, h_dim = self.k, self.hidden
        b = kb // k
        xk = x.reshape(k, b * t, d_in)
        valid = (torch.arange(t, device=x.device)[None, :] < lengths[:, None]).view(k, b, t, 1)
        fns = self.fns if torch.is_grad_enabled() else self.plain
        outs = []
        for d in range(self.dirs):
            w_ih, w_hh = self._dir_param("weight_ih", d), self._dir_param("weight_hh", d)
            b_ih, b_hh = self._dir_param("bias_ih", d), self._dir_param("bias_hh", d)
            gi = torch.baddbmm(b_ih.unsqueeze(1), xk, w_ih.transpose(1, 2)).view(k, b, t, -1)
            outs.append(recurrence(gi, w_hh, b_hh, valid, d == 1, fns, self.n_state))
        y = outs[0] if self.dirs == 1 else torch.cat(outs, -1)
        return y.reshape(kb, t, self.dirs * h_dim)


# --------------------------------------------------------------------------- attention


class PackedAttention(nn.Module):
    """:class:`~tunelab.models.layers.MaskedMultiheadAttention` for K members.

    Its projections are packed linears; the attention itself runs with members folded into the
    batch (scaled-dot-product attention is per sample).  With per-member attention dropout in
    training, the softmax is computed here so each member's weights drop at its own rate.
    """

    rates: Tensor

    def __init__(self, mods: Sequence[MaskedMultiheadAttention], q: nn.Module, kv: nn.Module, out: nn.Module) -> None:
        super().__init__()
        self.k = len(mods)
        self.num_heads = mods[0].num_heads
        self.q, self.kv, self.out = q, kv, out
        self.register_buffer("rates", _rates([m.dropout for m in mods]), persistent=False)
        self._active = any(m.dropout > 0 for m in mods)

    def select_(self, idx: Tensor) -> None:
        self.rates = self.rates[idx.to(self.rates.device)]
        self.k = len(idx)
        self._active = bool((self.rates > 0).any())

    def forward(self, query: Tensor, key: Tensor, key_mask: Tensor) -> Tensor:
        b, tq, d = query.shape
        q, k, v, allowed = attention_heads(self.q, self.kv, self.num_heads, query, key, key_mask)
        if self.training and self._active:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.num_heads)
            weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
            attn = member_dropout(weights, self.rates, self.k) @ v
        else:
            attn = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        return self.out(attn.transpose(1, 2).reshape(b, tq, d))  # type: ignore[no-any-return]
