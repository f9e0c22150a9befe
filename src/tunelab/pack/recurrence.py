"""A stacked GRU recurrence with a hand-written backward pass.

Autograd through a time loop that multiplies by the same hidden weights at every step computes a
full ``[K, 3H, H]`` weight gradient per step and adds it to the running sum: for K = 512 members
and H = 128 that is ~100 MB written and ~300 MB moved per step, per layer.  Here the backward
pass stores the per-step gate gradients ``[T, K, B, 3H]`` and forms the weight gradient with one
batched matmul over all steps (``[K, 3H, T * B] @ [K, T * B, H]``) — the same sum, computed once.
The per-step arithmetic is in two small functions (forward, backward) that ``torch.compile``
can fuse into one kernel each.

Masking follows :class:`~tunelab.pack.layers.PackedRNN`: a member's state holds where the step is
padding, and outputs there are zero.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["PLAIN", "StepFunctions", "gru_recurrence", "gru_step_backward", "gru_step_forward"]


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


StepFunctions = tuple[Callable[..., Any], Callable[..., Any]]
PLAIN: StepFunctions = (gru_step_forward, gru_step_backward)


class _GRURecurrence(torch.autograd.Function):
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
    ) -> Tensor:
        t = gi.shape[2]
        mm = mm_dtype or gi.dtype
        w_t = w_hh.to(mm).transpose(1, 2)
        bias = b_hh.to(mm).unsqueeze(1)
        h = gi.new_zeros(gi.shape[0], gi.shape[1], w_hh.shape[-1])
        # per-step tensors kept as lists: no copy into buffers, one stack where a buffer is needed
        hs: list[Tensor] = [h] * t
        outs: list[Tensor] = [h] * t
        saved: list[list[Tensor]] = [[h] * t for _ in range(4)]  # r, z, n, h_n
        gis, valids = gi.unbind(2), valid.unbind(2)
        for s in range(t - 1, -1, -1) if reverse else range(t):
            gh = torch.baddbmm(bias, h.to(mm), w_t)
            hs[s] = h
            h, outs[s], saved[0][s], saved[1][s], saved[2][s], saved[3][s] = fns[0](gis[s], gh, h, valids[s])
        ctx.save_for_backward(w_hh, valid, *hs, *(x for part in saved for x in part))
        ctx.reverse, ctx.fns, ctx.mm, ctx.t = reverse, fns, mm, t
        return torch.stack(outs, 2)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx: Any, d_out: Tensor) -> tuple[Tensor, Tensor, Tensor, None, None, None, None]:
        w_hh, valid, *rest = ctx.saved_tensors
        t, mm = ctx.t, ctx.mm
        hs = rest[:t]
        r, z, n, h_n = (rest[t * (i + 1) : t * (i + 2)] for i in range(4))
        k, b, _, h_dim = d_out.shape
        w_mm = w_hh.to(mm)
        dh = d_out.new_zeros(k, b, h_dim)
        dgis: list[Tensor] = [dh] * t
        dghs: list[Tensor] = [dh] * t
        d_outs, valids = d_out.unbind(2), valid.unbind(2)
        for s in range(t) if ctx.reverse else range(t - 1, -1, -1):
            dh_prev, dgis[s], dghs[s] = ctx.fns[1](dh, d_outs[s], hs[s], r[s], z[s], n[s], h_n[s], valids[s])
            if mm == dh.dtype:
                dh = torch.baddbmm(dh_prev, dghs[s], w_hh)  # through W_hh to the previous state
            else:
                dh = dh_prev + torch.bmm(dghs[s].to(mm), w_mm).to(dh.dtype)
        flat = torch.stack(dghs, 1).reshape(k, t * b, 3 * h_dim)
        states = torch.stack(hs, 1).reshape(k, t * b, h_dim)
        d_w = torch.bmm(flat.to(mm).transpose(1, 2), states.to(mm)).to(w_hh.dtype)  # all steps at once
        return torch.stack(dgis, 2), d_w, flat.sum(1), None, None, None, None


def gru_recurrence(
    gi: Tensor, w_hh: Tensor, b_hh: Tensor, valid: Tensor, reverse: bool = False, fns: StepFunctions = PLAIN
) -> Tensor:
    """Outputs ``[K, B, T, H]`` of K GRUs given input projections ``gi [K, B, T, 3H]`` (input bias
    included), hidden weights ``w_hh [K, 3H, H]``, bias ``b_hh [K, 3H]`` and ``valid [K, B, T, 1]``.

    ``fns`` are the per-step (forward, backward) functions, e.g. ``torch.compile``d versions of
    :func:`gru_step_forward` and :func:`gru_step_backward`.  Under CUDA autocast the recurrence
    keeps its state and gate arithmetic in float32 (the state accumulates over many steps) and
    runs only the hidden matmuls in the autocast dtype."""
    mm = torch.get_autocast_dtype("cuda") if gi.is_cuda and torch.is_autocast_enabled("cuda") else None
    out: Tensor = _GRURecurrence.apply(gi, w_hh, b_hh, valid, reverse, fns, mm)
    return out
