"""Stacked GRU and LSTM recurrences with a hand-written backward pass.

Autograd through a time loop that multiplies by the same hidden weights at every step computes a
full ``[K, G*H, H]`` weight gradient per step and adds it to the running sum: for K = 512 members
and H = 128 that is ~100 MB written and ~300 MB moved per step, per layer.  Here the backward
pass stores the per-step gate gradients ``[T, K, B, G*H]`` and forms the weight gradient with one
batched matmul over all steps (``[K, G*H, T * B] @ [K, T * B, H]``) — the same sum, computed once.
The per-step arithmetic of each cell is in two small functions (forward, backward) that
``torch.compile`` can fuse into one kernel each; one autograd function runs the loop for both.

Masking follows :class:`~tunelab.pack.layers.PackedRNN`: a member's state holds where the step is
padding, and outputs there are zero.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "GRU_STEPS",
    "LSTM_STEPS",
    "StepFunctions",
    "gru_step_backward",
    "gru_step_forward",
    "lstm_step_backward",
    "lstm_step_forward",
    "recurrence",
]


def gru_step_forward(
    gi: Tensor, gh: Tensor, h: Tensor, valid: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(next state, output, r, z, n, h_n) of one masked GRU step; ``gh`` includes the hidden bias
    (and may be bf16: the gate arithmetic and the state are float32)."""
    i_r, i_z, i_n = gi.chunk(3, -1)
    h_r, h_z, h_n = gh.to(h.dtype).chunk(3, -1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    h_new = n + z * (h - n)
    return torch.where(valid, h_new, h), h_new * valid, r, z, n, h_n


def gru_step_backward(
    dh: Tensor, d_out: Tensor, h_prev: Tensor, r: Tensor, z: Tensor, n: Tensor, h_n: Tensor, valid: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of one step: (to the previous state except through ``W_hh``, to the input
    projection ``gi``, to the hidden projection ``gh``)."""
    d_new = torch.where(valid, dh + d_out, torch.zeros_like(dh))
    dn = d_new * (1 - z)
    dz = d_new * (h_prev - n)
    da_n = dn * (1 - n * n)
    da_r = da_n * h_n * r * (1 - r)
    da_z = dz * z * (1 - z)
    dh_prev = torch.where(valid, d_new * z, dh)
    dgi = torch.cat([da_r, da_z, da_n], -1)
    dgh = torch.cat([da_r, da_z, da_n * r], -1)
    return dh_prev, dgi, dgh


def lstm_step_forward(
    gi: Tensor, gh: Tensor, h: Tensor, c: Tensor, valid: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(next state, next cell, output, i, f, g, o, tanh(next cell)) of one masked LSTM step
    (PyTorch's gate order i, f, g, o; ``gh`` includes the hidden bias)."""
    a_i, a_f, a_g, a_o = (gi + gh.to(h.dtype)).chunk(4, -1)
    i, f, g, o = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.tanh(a_g), torch.sigmoid(a_o)
    c_new = f * c + i * g
    tc = torch.tanh(c_new)
    h_new = o * tc
    return torch.where(valid, h_new, h), torch.where(valid, c_new, c), h_new * valid, i, f, g, o, tc


def lstm_step_backward(
    dh: Tensor,
    dc: Tensor,
    d_out: Tensor,
    h_prev: Tensor,
    c_prev: Tensor,
    i: Tensor,
    f: Tensor,
    g: Tensor,
    o: Tensor,
    tc: Tensor,
    valid: Tensor,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gradients of one step: (to the previous state except through ``W_hh``, to the previous
    cell, to the input projection ``gi``, to the hidden projection ``gh`` — the same: both add
    into the gates)."""
    zero = torch.zeros_like(dh)
    d_h = torch.where(valid, dh + d_out, zero)
    d_c = torch.where(valid, dc + d_h * o * (1 - tc * tc), zero)
    da = torch.cat(
        [d_c * g * i * (1 - i), d_c * c_prev * f * (1 - f), d_c * i * (1 - g * g), d_h * tc * o * (1 - o)], -1
    )
    return torch.where(valid, zero, dh), torch.where(valid, d_c * f, dc), da, da


StepFunctions = tuple[Callable[..., Any], Callable[..., Any]]
GRU_STEPS: StepFunctions = (gru_step_forward, gru_step_backward)
LSTM_STEPS: StepFunctions = (lstm_step_forward, lstm_step_backward)


class _Recurrence(torch.autograd.Function):
    """The time loop of a cell with ``n_state`` states (the first is the one ``W_hh`` multiplies).

    ``fns[0](gi_t, gh_t, *states, valid_t)`` returns ``(*next states, output, *saved)``;
    ``fns[1](*d_states, d_out_t, *prev states, *saved, valid_t)`` returns
    ``(*d_prev states except through W_hh, d_gi_t, d_gh_t)``."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)  # the state stays fp32 under autocast
    def forward(
        ctx: Any,
        gi: Tensor,
        w_hh: Tensor,
        b_hh: Tensor,
        valid: Tensor,
        reverse: bool,
        fns: StepFunctions,
        mm_dtype: torch.dtype | None,
        n_state: int,
    ) -> Tensor:
        t = gi.shape[2]
        mm = mm_dtype or gi.dtype
        w_t = w_hh.to(mm).transpose(1, 2)
        bias = b_hh.to(mm).unsqueeze(1)
        states = (gi.new_zeros(gi.shape[0], gi.shape[1], w_hh.shape[-1]),) * n_state
        # per-step tensors kept as lists: no copy into buffers, one stack where a buffer is needed
        per_step: list[tuple[Tensor, ...]] = [()] * t  # the step's previous states, then what it saved
        outs: list[Tensor] = [states[0]] * t
        gis, valids = gi.unbind(2), valid.unbind(2)
        for s in range(t - 1, -1, -1) if reverse else range(t):
            gh = torch.baddbmm(bias, states[0].to(mm), w_t)
            res = fns[0](gis[s], gh, *states, valids[s])
            per_step[s] = (*states, *res[n_state + 1 :])
            states, outs[s] = tuple(res[:n_state]), res[n_state]
        ctx.save_for_backward(w_hh, valid, *(x for step in per_step for x in step))
        ctx.reverse, ctx.fns, ctx.mm, ctx.t, ctx.n_state, ctx.width = reverse, fns, mm, t, n_state, len(per_step[0])
        return torch.stack(outs, 2)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx: Any, d_out: Tensor) -> tuple[Tensor | None, ...]:
        w_hh, valid, *rest = ctx.saved_tensors
        t, mm, n, width = ctx.t, ctx.mm, ctx.n_state, ctx.width
        per_step = [rest[s * width : (s + 1) * width] for s in range(t)]
        k, b, _, h_dim = d_out.shape
        w_mm = w_hh.to(mm)
        d_states: tuple[Tensor, ...] = (d_out.new_zeros(k, b, h_dim),) * n
        dgis: list[Tensor] = [d_states[0]] * t
        dghs: list[Tensor] = [d_states[0]] * t
        d_outs, valids = d_out.unbind(2), valid.unbind(2)
        for s in range(t) if ctx.reverse else range(t - 1, -1, -1):
            res = ctx.fns[1](*d_states, d_outs[s], *per_step[s], valids[s])
            d_prev, dgis[s], dghs[s] = res[:n], res[n], res[n + 1]
            if mm == d_prev[0].dtype:  # through W_hh to the previous state
                dh = torch.baddbmm(d_prev[0], dghs[s], w_hh)
            else:
                dh = d_prev[0] + torch.bmm(dghs[s].to(mm), w_mm).to(d_prev[0].dtype)
            d_states = (dh, *d_prev[1:])
        flat = torch.stack(dghs, 1).reshape(k, t * b, -1)
        hs = torch.stack([step[0] for step in per_step], 1).reshape(k, t * b, h_dim)
        d_w = torch.bmm(flat.to(mm).transpose(1, 2), hs.to(mm)).to(w_hh.dtype)  # all steps at once
        return torch.stack(dgis, 2), d_w, flat.sum(1), None, None, None, None, None


def recurrence(
    gi: Tensor, w_hh: Tensor, b_hh: Tensor, valid: Tensor, reverse: bool, fns: StepFunctions, n_state: int
) -> Tensor:
    """Outputs ``[K, B, T, H]`` of K recurrent layers given input projections ``gi [K, B, T, G*H]``
    (input bias included), hidden weights ``w_hh [K, G*H, H]``, bias ``b_hh [K, G*H]`` and
    ``valid [K, B, T, 1]``; ``fns`` are the cell's per-step (forward, backward) functions
    (:data:`GRU_STEPS` with ``n_state`` 1, :data:`LSTM_STEPS` with 2: state and cell), or
    ``torch.compile``d versions of them.  Under CUDA autocast the state and gate arithmetic stay float32
    (the state accumulates over many steps) and only the hidden matmuls run in the autocast dtype."""
    mm = torch.get_autocast_dtype("cuda") if gi.is_cuda and torch.is_autocast_enabled("cuda") else None
    out: Tensor = _Recurrence.apply(gi, w_hh, b_hh, valid, reverse, fns, mm, n_state)
    return out
