"""Build a packed model from K ordinary models, and take members back out.

:func:`pack_models` copies member 0's module tree and replaces each layer with parameters by
its stacked form (:mod:`tunelab.pack.layers`), filled from all K members.  The model's own
``forward`` code then runs unchanged on a batch of ``K * B`` rows (members folded into the batch,
member-major).  A member's weights go in and out as an ordinary single-model state dict, so an
extracted member is a checkpoint that ``tunelab evaluate`` loads like any other.

Recurrent families call ``nn.GRU``/``nn.LSTM`` on packed sequences; for the GRU/LSTM and Conv+GRU
families the packed model runs their encoder on the padded batch instead (the stacked recurrent
layer masks by length itself), which avoids the host round trip of packing — the results are the
same, and the tests check that a pack equals its members trained alone.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from tunelab.models.base import length_mask
from tunelab.models.conv_gru import ConvGRU
from tunelab.models.gru import RNNClassifier
from tunelab.models.layers import MaskedBatchNorm1d, MaskedMultiheadAttention, zero_padding
from tunelab.pack.layers import (
    PackedAttention,
    PackedConv1d,
    PackedConvTranspose1d,
    PackedDropout,
    PackedLayer,
    PackedLayerNorm,
    PackedLinear,
    PackedMaskedBatchNorm,
    PackedRNN,
)

__all__ = ["NotPackable", "PackedModel", "pack_models"]


class NotPackable(ValueError):
    """These models cannot train as one pack (an unsupported layer or a direct parameter)."""


_LEAVES: dict[type[nn.Module], type[PackedLayer]] = {
    nn.Linear: PackedLinear,
    nn.LayerNorm: PackedLayerNorm,
    nn.Conv1d: PackedConv1d,
    nn.ConvTranspose1d: PackedConvTranspose1d,
    nn.GRU: PackedRNN,
    nn.LSTM: PackedRNN,
    MaskedBatchNorm1d: PackedMaskedBatchNorm,
}

# Modules without parameters that behave per sample, so they run as they are on a folded batch.
_STATELESS = (nn.Identity, nn.GELU, nn.ReLU, nn.Tanh, nn.Sigmoid, nn.SiLU, nn.ModuleList, nn.Sequential, nn.ModuleDict)


def _convert(mods: Sequence[nn.Module], path: str) -> nn.Module:
    """The packed form of the K modules ``mods`` (same type and structure)."""
    first = mods[0]
    kind = type(first)
    if kind in _LEAVES:
        try:
            return _LEAVES[kind](mods)  # type: ignore[call-arg]
        except NotImplementedError as exc:
            raise NotPackable(f"{path or 'model'}: {exc}") from None
    if kind is nn.Dropout:
        return PackedDropout([float(m.p) for m in mods])  # type: ignore[arg-type]
    if isinstance(first, MaskedMultiheadAttention):
        subs = [_convert([getattr(m, n) for m in mods], f"{path}.{n}") for n in ("q", "kv", "out")]
        return PackedAttention(mods, *subs)  # type: ignore[arg-type]
    if list(first.parameters(recurse=False)):
        raise NotPackable(
            f"{path or 'model'} ({kind.__name__}) holds its own parameters; only known layers can be stacked"
        )
    if not first._modules and not isinstance(first, _STATELESS) and list(first.parameters()):
        raise NotPackable(f"{path or 'model'}: {kind.__name__} cannot be stacked")
    out = copy.copy(first)
    out._modules = dict(first._modules)
    out._parameters = dict(first._parameters)
    out._buffers = dict(first._buffers)
    for name, child in first._modules.items():
        if child is None:
            continue
        children: list[nn.Module] = [m._modules[name] for m in mods]  # type: ignore[misc]
        out._modules[name] = _convert(children, f"{path}.{name}" if path else name)  # type: ignore[arg-type]
    return out


def _rnn_encode(self: RNNClassifier, x: Tensor, lengths: Tensor) -> Tensor:
    """:meth:`RNNClassifier.encode` on the padded batch: the stacked layers mask by length."""
    t = x.shape[1]
    h = x
    for i, (rnn, norm) in enumerate(zip(self.layers, self.norms, strict=True)):
        h = rnn.run(h, lengths)  # type: ignore[operator]
        h = norm(h)
        if i < len(self.layers) - 1:
            h = self.drop(h)
    return h * length_mask(lengths, t).unsqueeze(-1).to(h.dtype)


class _PackedRNNClassifier(RNNClassifier):
    encode = _rnn_encode


class _PackedConvGRU(ConvGRU):
    def encode(self, x: Tensor, lengths: Tensor) -> Tensor:
        mask = length_mask(lengths, x.shape[1])
        h = x
        for conv in self.convs:
            h = zero_padding(self.conv_drop(self.act(conv(h, mask))), mask)
        return _rnn_encode(self, h, lengths)


_PADDED_ENCODERS: dict[type[nn.Module], type[nn.Module]] = {
    RNNClassifier: _PackedRNNClassifier,
    ConvGRU: _PackedConvGRU,
}


class PackedModel(nn.Module):
    """K models of one family and shape, trained as one.

    ``forward(x, lengths, **extras)`` takes the shared batch ``x [B, T, C]`` (or one per member,
    ``[K, B, T, C]``) and returns every member's output ``[K, B, ...]``.
    """

    def __init__(self, body: nn.Module, k: int) -> None:
        super().__init__()
        self.body = body
        self.k = k

    def forward(self, x: Tensor, lengths: Tensor, **extras: Tensor) -> Tensor:
        k = self.k
        if x.dim() == 4:  # per-member inputs (augmented differently)
            xs = x.reshape(k * x.shape[1], *x.shape[2:])
        else:
            xs = x.unsqueeze(0).expand(k, *x.shape).reshape(k * x.shape[0], *x.shape[1:])
        b = xs.shape[0] // k
        folded = {
            name: v.unsqueeze(0).expand(k, *v.shape).reshape(k * v.shape[0], *v.shape[1:]) for name, v in extras.items()
        }
        out = self.body(xs, lengths.repeat(k), **folded)
        return out.view(k, b, *out.shape[1:])  # type: ignore[no-any-return]

    @property
    def head(self) -> nn.Module | None:
        """The output layer (it learns at ``lr``; the body at ``lr x body_lr_scale``)."""
        head = getattr(self.body, "head", None)
        return head if isinstance(head, nn.Module) else None

    def member_state_dict(self, k: int) -> dict[str, Tensor]:
        """Member ``k``'s weights as an ordinary single-model state dict (copies)."""
        return {name: v[k].detach().clone() for name, v in self.body.state_dict().items()}

    def load_member(self, k: int, state: dict[str, Tensor]) -> None:
        """Overwrite member ``k``'s weights from an ordinary single-model state dict."""
        own = self.body.state_dict()
        if set(own) != set(state):
            raise KeyError(
                f"state dict keys differ: missing {sorted(set(own) - set(state))[:3]}, unexpected {sorted(set(state) - set(own))[:3]}"
            )
        with torch.no_grad():
            for name, v in own.items():
                v[k].copy_(state[name])

    def select_(self, idx: Tensor) -> None:
        """Keep members ``idx`` only (compaction when many have stopped); in place."""
        for m in self.body.modules():
            if isinstance(m, (PackedLayer, PackedAttention)):
                m.select_(idx)
        self.k = len(idx)


def pack_models(models: Sequence[nn.Module]) -> PackedModel:
    """Stack K ordinary models of one family and shape into a :class:`PackedModel`.

    Raises :class:`NotPackable` when a layer has no stacked form or a module holds parameters
    of its own (such models train one at a time).
    """
    if not models:
        raise ValueError("a pack needs at least one model")
    keys = list(models[0].state_dict())
    for i, m in enumerate(models[1:], 1):
        if list(m.state_dict()) != keys or any(
            m.state_dict()[n].shape != v.shape for n, v in models[0].state_dict().items()
        ):
            raise NotPackable(f"member {i} has a different architecture from member 0")
    body = _convert(models, "")
    if type(body) in _PADDED_ENCODERS:
        body.__class__ = _PADDED_ENCODERS[type(body)]
    single = models[0].state_dict()
    stacked = body.state_dict()
    wrong = [n for n in keys if n not in stacked or stacked[n].shape != (len(models), *single[n].shape)]
    if wrong or set(stacked) != set(keys):
        raise NotPackable(f"state entries without a stacked form: {sorted(wrong or set(stacked) ^ set(keys))[:5]}")
    return PackedModel(body, len(models))
