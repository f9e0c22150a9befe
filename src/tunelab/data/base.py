"""SequenceData: the one in-memory form of every dataset.

Sequences are stored padded as a float tensor ``x [N, T, C]`` with ``lengths [N]``; padding is
zeros and is masked everywhere downstream (models, losses, normalisation), never learned.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Literal

import torch
from torch import Tensor

__all__ = ["DataMeta", "SequenceData", "Task"]

Task = Literal["classification", "regression", "seq2seq"]


@dataclass(frozen=True)
class DataMeta:
    """What a model builder needs to know about the data."""

    name: str
    channels: int
    max_len: int
    task: Task = "classification"
    n_classes: int = 0
    class_names: tuple[str, ...] = ()
    n_outputs: int = 0  # classes, regression targets, or seq2seq output channels

    @property
    def out_dim(self) -> int:
        return self.n_classes if self.task == "classification" else self.n_outputs


@dataclass
class SequenceData:
    """Padded sequences, their lengths, targets, metadata and optional extra per-sample tensors.

    ``y`` is int64 ``[N]`` (class ids), float ``[N, D]`` (regression) or float ``[N, T, C_out]``
    (seq2seq, padded like ``x``).  ``split`` marks an official split: 0 train, 1 test.
    ``extras`` holds other per-sample model inputs (a graph's adjacency, ...), passed to the
    model as keyword arguments.  ``y_scale`` ``[D]``: regression and seq2seq targets were divided
    by it per output channel when the splits were prepared; errors are multiplied by it again for
    MSE and MAE, so they are in the targets' own units.
    """

    x: Tensor
    lengths: Tensor
    y: Tensor
    meta: DataMeta
    split: Tensor | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)
    y_scale: Tensor | None = None

    def __post_init__(self) -> None:
        n = self.x.shape[0]
        assert self.x.dim() == 3, "x must be [N, T, C]"
        assert self.lengths.shape == (n,) and self.y.shape[0] == n

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, idx: Tensor) -> SequenceData:
        """Rows ``idx`` (a long tensor of indices or a bool mask)."""
        return replace(
            self,
            x=self.x[idx],
            lengths=self.lengths[idx],
            y=self.y[idx],
            split=None if self.split is None else self.split[idx],
            extras={k: v[idx] for k, v in self.extras.items()},
        )

    def to(self, device: torch.device | str) -> SequenceData:
        return replace(
            self,
            x=self.x.to(device),
            lengths=self.lengths.to(device),
            y=self.y.to(device),
            split=None if self.split is None else self.split.to(device),
            extras={k: v.to(device) for k, v in self.extras.items()},
            y_scale=None if self.y_scale is None else self.y_scale.to(device),
        )

    @cached_property
    def host_lengths(self) -> Tensor:
        """``lengths`` on the CPU, copied once: batch trimming reads it without waiting for the device."""
        return self.lengths.cpu()

    def mask(self) -> Tensor:
        """Bool ``[N, T]``: True on valid steps."""
        steps = torch.arange(self.x.shape[1], device=self.x.device)
        return steps[None, :] < self.lengths[:, None]

    @staticmethod
    def from_list(seqs: list[Tensor], y: Tensor, meta: DataMeta, split: Tensor | None = None) -> SequenceData:
        """Pad a list of ``[T_i, C]`` tensors into one SequenceData."""
        lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
        x = torch.nn.utils.rnn.pad_sequence([s.float() for s in seqs], batch_first=True)
        return SequenceData(x=x, lengths=lengths, y=y, meta=meta, split=split)
