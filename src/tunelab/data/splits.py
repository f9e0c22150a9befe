"""Seeded, stratified splits and the ``classes`` filter."""

from __future__ import annotations

import dataclasses
import logging

import torch
from torch import Tensor

from tunelab.data.base import SequenceData
from tunelab.errors import UserError

__all__ = ["keep_top_classes", "split_indices"]

log = logging.getLogger(__name__)


def split_indices(
    data: SequenceData, fraction: float, generator: torch.Generator, *, part: str, key: str
) -> tuple[Tensor, Tensor]:
    """Split the rows of ``data`` into (rest, held-out) index tensors, both sorted.

    Classification is stratified: each class gives ``round(fraction * n_c)`` rows (at least one,
    and at least one stays), so every class with two rows or more appears on both sides.  A class
    with a single row stays on the training side, with a warning: the model still learns it, and
    the held-out part has none of it (small public datasets have such classes: UCR's
    DiatomSizeReduction has one in its 16 training series).  Other tasks split at random.  ``part`` names the
    part being split ("train split", "data") and ``key`` the config key, for messages.
    """
    n = len(data)
    if data.meta.task != "classification":
        if n < 2:
            raise UserError(f"{key}: the {part} has {n} sequence(s); splitting it needs at least 2")
        k = min(max(1, round(fraction * n)), n - 1)
        perm = torch.randperm(n, generator=generator)
        return perm[k:].sort().values, perm[:k].sort().values
    y = data.y.cpu()
    if int(torch.bincount(y).max()) < 2:
        raise UserError(f"{key}: every class has a single sequence in the {part}; nothing can be held out, add data")
    held, rest = [], []
    for c in range(data.meta.n_classes):
        idx = torch.nonzero(y == c).flatten()
        if len(idx) == 0:
            continue
        if len(idx) == 1:
            name = data.meta.class_names[c] if c < len(data.meta.class_names) else str(c)
            log.warning(
                "%s: class %r has 1 sequence in the %s: it stays in training, and the held-out part has none"
                " of it (data.classes=N keeps the frequent classes)",
                key,
                name,
                part,
            )
            rest.append(idx)
            continue
        idx = idx[torch.randperm(len(idx), generator=generator)]
        k = min(max(1, round(fraction * len(idx))), len(idx) - 1)
        held.append(idx[:k])
        rest.append(idx[k:])
    return torch.cat(rest).sort().values, torch.cat(held).sort().values


def keep_top_classes(data: SequenceData, k: int) -> SequenceData:
    """Keep the ``k`` most frequent classes (ties: the lower class id), renumbered 0..k-1 in their old order."""
    meta = data.meta
    if meta.task != "classification":
        raise UserError(
            f"data.classes={k}: only classification data has classes (this data is {meta.task}); remove data.classes"
        )
    if k > meta.n_classes:
        raise UserError(f"data.classes={k}: the data has only {meta.n_classes} classes; use at most {meta.n_classes}")
    if k == meta.n_classes:
        return data
    counts = torch.bincount(data.y.cpu(), minlength=meta.n_classes)
    order = sorted(range(meta.n_classes), key=lambda c: (-int(counts[c]), c))  # stable: frequency, then id
    kept = sorted(order[:k])
    remap = torch.full((meta.n_classes,), -1, dtype=torch.long)
    remap[kept] = torch.arange(k)
    rows = torch.nonzero(remap[data.y.cpu()] >= 0).flatten()
    sub = data.subset(rows)
    names = tuple(meta.class_names[c] for c in kept) if meta.class_names else tuple(str(c) for c in kept)
    new_meta = dataclasses.replace(meta, n_classes=k, class_names=names, n_outputs=k)
    return dataclasses.replace(sub, y=remap.to(sub.y.device)[sub.y], meta=new_meta)
