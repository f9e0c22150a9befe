"""Device-resident batching by index slicing.

A DataLoader is not needed here: these datasets fit in device memory many times over, so the
whole split lives on the device once and a batch is an index gather — no worker processes, no
collate, no per-step host→device copy.  Each batch is trimmed to its longest sequence so padding
costs no compute; with ``bucket=True`` batches group similar lengths to cut padding further.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from tunelab.data.base import SequenceData

__all__ = ["Batch", "batch_indices", "iterate", "make_batch"]

Batch = tuple[dict[str, Tensor], Tensor]


def batch_indices(
    n: int,
    batch_size: int,
    *,
    shuffle: bool,
    generator: torch.Generator | None = None,
    lengths: Tensor | None = None,
    bucket: bool = False,
    drop_last: bool = False,
) -> list[Tensor]:
    """Index tensors (on CPU) for one pass over ``n`` samples."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    if bucket and lengths is not None:
        # sort within windows of 50 batches: similar lengths together, still random across windows
        window = batch_size * 50
        lens = lengths.cpu()[order]  # callers pass SequenceData.host_lengths: no wait for the device
        chunks = [order[i : i + window][torch.argsort(lens[i : i + window], stable=True)] for i in range(0, n, window)]
        order = torch.cat(chunks)
    batches = list(torch.split(order, batch_size))
    if drop_last and len(batches) > 1 and len(batches[-1]) < batch_size:
        batches.pop()
    if bucket and shuffle:
        perm = torch.randperm(len(batches), generator=generator)
        batches = [batches[i] for i in perm]
    return batches


def make_batch(data: SequenceData, idx: Tensor) -> Batch:
    """Gather rows ``idx`` and trim time to the longest sequence in the batch.

    The trim length comes from a host copy of the lengths (``idx`` from :func:`batch_indices` is
    on the CPU), so building a batch never waits for the device."""
    t_max = int(data.host_lengths[idx.cpu()].max())
    idx = idx.to(data.x.device, non_blocking=True)
    lengths = data.lengths[idx]
    inputs = {"x": data.x[idx, :t_max], "lengths": lengths}
    for key, value in data.extras.items():
        inputs[key] = value[idx]
    y = data.y[idx]
    if data.meta.task == "seq2seq":
        y = y[:, :t_max]
    return inputs, y


def iterate(
    data: SequenceData,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    bucket: bool = False,
) -> Iterator[Batch]:
    """All batches of one pass over ``data``."""
    for idx in batch_indices(
        len(data), batch_size, shuffle=shuffle, generator=generator, lengths=data.host_lengths, bucket=bucket
    ):
        yield make_batch(data, idx)
