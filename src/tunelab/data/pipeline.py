"""From a ``DataConfig`` to prepared splits: load, filter classes, add noise, split, normalise.

``load_dataset`` returns the whole dataset; ``prepare`` returns what training needs:

1. **test split** — the data's official train/test split when it has one (``.ts`` folders,
   JapaneseVowels, a ``split`` array/column); otherwise a stratified ``test_fraction`` of the
   data, drawn with a fixed seed (0) rather than the run's seed, so every run, repeat and trial
   is scored on the same held-out rows and no run trains on another's test rows;
2. **validation split** — a stratified ``val_fraction`` of the training rows, drawn with the
   run's ``seed`` (classification keeps every class on both sides; a class with one training
   row cannot be split and is a UserError);
3. **normalisation** (``normalize: true``) with statistics of the training rows only, over
   valid steps only; padding stays exactly zero.  Inputs get a per-channel z-score.  For
   seq2seq data whose target has as many channels as the input (denoising), input and target
   are both divided by the input's per-channel RMS and not centred: one transform for both, so
   "output = input" stays the identity and SNRs are unchanged.  Other seq2seq targets get their
   own z-score; classification labels are left as they are.  Regression targets get a z-score per
   output too, so training does not depend on their units (a target in the thousands trains as
   one near 1).  Each split keeps its targets' scale (``SequenceData.y_scale``, regression and
   seq2seq), so its MSE and MAE are reported in the targets' own units, and ``tunelab export``
   maps outputs back to them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from tunelab.data.base import DataMeta, SequenceData
from tunelab.data.formats import check_options, load_file
from tunelab.data.noise import make_denoising
from tunelab.data.normalize import apply_stats, channel_stats, rms_stats
from tunelab.data.splits import keep_top_classes, split_indices
from tunelab.registry import DATASETS

if TYPE_CHECKING:
    from tunelab.config import DataConfig

__all__ = ["TEST_SPLIT_SEED", "Splits", "data_key", "load_dataset", "prepare"]

log = logging.getLogger(__name__)

TEST_SPLIT_SEED = 0  # the held-out test rows do not move with the run's seed (see the module doc)


@dataclass
class Splits:
    """Prepared train/validation/test data and the normalisation that was applied.

    ``mean``/``std`` ``[C]``: inputs were transformed as ``(x - mean) / std`` on valid steps
    (zeros/ones when ``normalize`` is off).  ``target_mean``/``target_std``: the same for seq2seq
    and regression targets, None when targets were left as they are.  ``official_split``: whether the test rows
    are the data's own test split.
    """

    train: SequenceData
    val: SequenceData
    test: SequenceData
    meta: DataMeta
    mean: Tensor
    std: Tensor
    target_mean: Tensor | None = None
    target_std: Tensor | None = None
    official_split: bool = False

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def _clone(data: SequenceData) -> SequenceData:
    return dataclasses.replace(
        data,
        x=data.x.clone(),
        lengths=data.lengths.clone(),
        y=data.y.clone(),
        split=None if data.split is None else data.split.clone(),
        extras={k: v.clone() for k, v in data.extras.items()},
    )


@lru_cache(maxsize=4)
def _cached_file(path: str, stamp: tuple[int, int], options_json: str) -> SequenceData:
    return load_file(path, json.loads(options_json))


def _load_file(path: str, options: dict[str, Any]) -> SequenceData:
    """A file load, cached per (path, modification time, options): trials re-prepare the same data."""
    p = Path(path).expanduser()
    try:
        st = p.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        key = json.dumps(options, sort_keys=True)
    except (OSError, TypeError):
        return load_file(p, options)
    if p.is_dir():  # a folder's files change without touching the folder's own stamp
        stamp = (hash(tuple((f.name, f.stat().st_mtime_ns) for f in sorted(p.iterdir()))), st.st_size)
    return _clone(_cached_file(str(p.resolve()), stamp, key))


def data_key(cfg: DataConfig, seed: int) -> str:
    """What identifies the prepared splits of ``cfg`` with ``seed`` (augmentation and bucketing
    act on batches, not on the data): equal keys, equal splits."""
    return f"{json.dumps(cfg.model_dump(mode='json', exclude={'augment', 'bucket'}), sort_keys=True)} seed {seed}"


def load_dataset(cfg: DataConfig, seed: int = 0) -> SequenceData:
    """The whole dataset ``cfg`` names: a file (``cfg.path``) or a registered dataset (``cfg.name``).

    Then keeps the ``cfg.classes`` most frequent classes, and with ``cfg.noise`` turns the data
    into a denoising task (noise drawn with ``seed``).
    """
    if cfg.path:
        data = _load_file(cfg.path, cfg.options)
    else:
        entry = DATASETS.get(cfg.name)
        check_options(entry.fn, cfg.options, f"dataset '{cfg.name}'")
        data = entry.fn(**cfg.options)
        if not isinstance(data, SequenceData):
            raise TypeError(f"dataset '{cfg.name}' returned {type(data).__name__}, not SequenceData")
    if cfg.classes is not None:
        data = keep_top_classes(data, cfg.classes)
    if cfg.noise is not None:
        data = make_denoising(data, cfg.noise.kind, cfg.noise.snr_db, seed)
    return data


def prepare(cfg: DataConfig, seed: int) -> Splits:
    """Load, split (official or stratified, seeded) and normalise the data (see the module doc)."""
    data = load_dataset(cfg, seed)
    where = f"{cfg.path or cfg.name}: "  # split messages name the data
    official = data.split is not None and bool((data.split == 0).any()) and bool((data.split == 1).any())
    if official:
        assert data.split is not None
        train_all = data.subset(torch.nonzero(data.split == 0).flatten())
        test = data.subset(torch.nonzero(data.split == 1).flatten())
    else:
        rest, held = split_indices(
            data,
            cfg.test_fraction,
            torch.Generator().manual_seed(TEST_SPLIT_SEED),
            part="data",
            key=f"{where}data.test_fraction",
        )
        train_all, test = data.subset(rest), data.subset(held)
    if _all_singletons(train_all):
        # UCR's Fungi: 18 training series, one per class.  Nothing can be held out, so validation
        # is the training split itself (as the field's deep baselines select on training loss).
        log.warning(
            "%severy class has a single sequence in the train split: nothing can be held out, so the"
            " validation scores are on the training data (optimistic; early stopping follows the"
            " training loss).  The test split stays untouched.",
            where,
        )
        train, val = train_all, train_all.subset(torch.arange(len(train_all)))
    else:
        keep, val_idx = split_indices(
            train_all,
            cfg.val_fraction,
            torch.Generator().manual_seed(seed),
            part="train split",
            key=f"{where}data.val_fraction",
        )
        train, val = train_all.subset(keep), train_all.subset(val_idx)
    parts = [train, val, test]
    c = data.meta.channels
    mean, std = torch.zeros(c), torch.ones(c)
    t_mean = t_std = None
    if cfg.normalize:
        seq2seq = data.meta.task == "seq2seq"
        shared = seq2seq and data.y.shape[-1] == data.x.shape[-1]
        mean, std = (rms_stats if shared else channel_stats)(train.x, train.lengths)
        if shared:
            t_mean, t_std = mean, std
        elif seq2seq:
            t_mean, t_std = channel_stats(train.y, train.lengths)
        elif data.meta.task == "regression":
            t_mean, t_std = channel_stats(train.y.float().unsqueeze(1), torch.ones_like(train.lengths))
        parts = [_normalised(p, mean, std, t_mean, t_std) for p in parts]
    log.debug("splits: %d train, %d val, %d test (official=%s)", *(len(p) for p in parts), official)
    train, val, test = parts
    return Splits(
        train,
        val,
        test,
        meta=data.meta,
        mean=mean,
        std=std,
        target_mean=t_mean,
        target_std=t_std,
        official_split=official,
    )


def _all_singletons(data: SequenceData) -> bool:
    """Whether ``data`` is classification data of two sequences or more, each of its own class."""
    if data.meta.task != "classification" or len(data) < 2:
        return False
    return int(torch.bincount(data.y.cpu()).max()) < 2


def _normalised(
    d: SequenceData, mean: Tensor, std: Tensor, t_mean: Tensor | None, t_std: Tensor | None
) -> SequenceData:
    x = apply_stats(d.x, d.lengths, mean, std)
    if t_mean is None or t_std is None:
        return dataclasses.replace(d, x=x)
    if d.y.dim() == 2:  # regression [N, D]: one step per row
        y = apply_stats(d.y.float().unsqueeze(1), torch.ones_like(d.lengths), t_mean, t_std).squeeze(1)
    else:
        y = apply_stats(d.y, d.lengths, t_mean, t_std)
    return dataclasses.replace(d, x=x, y=y, y_scale=t_std.clone())  # metrics multiply errors by it again
