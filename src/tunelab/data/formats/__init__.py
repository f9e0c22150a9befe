"""User data files: one loader per format, chosen by the file's suffix.

``load_file(path, options)`` reads a ``.ts``, ``.npz``, ``.csv`` or ``.parquet`` file, or a folder
holding ``NAME_TRAIN.<ext>`` and ``NAME_TEST.<ext>`` (loaded with that official split).
``options`` are the format loader's keyword arguments (``data.options`` in the config).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from tunelab.data.base import SequenceData
from tunelab.data.formats.npz import load_npz
from tunelab.data.formats.table import load_table
from tunelab.data.formats.ts import load_ts, load_ts_pair
from tunelab.errors import UserError

__all__ = ["LOADERS", "check_options", "load_file", "load_npz", "load_table", "load_ts", "load_ts_pair"]

LOADERS: dict[str, Callable[..., SequenceData]] = {
    ".ts": load_ts,
    ".npz": load_npz,
    ".csv": load_table,
    ".tsv": load_table,
    ".parquet": load_table,
}


def check_options(fn: Callable[..., Any], options: dict[str, Any], where: str) -> None:
    """Raise a UserError naming an option ``fn`` does not take, and the ones it does."""
    params = inspect.signature(fn).parameters
    if any(prm.kind == prm.VAR_KEYWORD for prm in params.values()):
        return
    valid = [
        n
        for n, prm in params.items()
        if prm.kind in (prm.KEYWORD_ONLY, prm.POSITIONAL_OR_KEYWORD) and prm.default is not prm.empty
    ]
    for key in options:
        if key not in valid:
            from tunelab.registry import closest

            raise UserError(
                f"data.options.{key}: not an option of {where}{closest(key, valid)}; valid: {', '.join(valid) or 'none'}"
            )


def load_file(path: str | Path, options: dict[str, Any] | None = None) -> SequenceData:
    """Load user data from ``path`` (a file, or a folder of NAME_TRAIN/NAME_TEST files)."""
    p = Path(path).expanduser()
    options = dict(options or {})
    if p.is_dir():
        return _load_folder(p, options)
    if not p.exists():
        raise UserError(f"data.path {p}: no such file or folder; check the path")
    loader = LOADERS.get(p.suffix.lower())
    if loader is None:
        raise UserError(
            f"data.path {p}: unknown file type '{p.suffix}'; use {', '.join(sorted(LOADERS))} or a NAME_TRAIN/NAME_TEST folder"
        )
    check_options(loader, options, f"{p.suffix} files (data.path {p})")
    return loader(p, **options)


def _load_folder(folder: Path, options: dict[str, Any]) -> SequenceData:
    pairs = []
    for train in sorted(folder.iterdir()):
        stem, suffix = train.stem, train.suffix.lower()
        if suffix in LOADERS and stem.upper().endswith("_TRAIN"):
            base = stem[: -len("_TRAIN")]
            tests = [
                f for f in folder.iterdir() if f.suffix.lower() == suffix and f.stem.upper() == f"{base}_TEST".upper()
            ]
            if tests:
                pairs.append((base, train, tests[0]))
    if not pairs:
        raise UserError(
            f"data.path {folder}: a folder needs NAME_TRAIN.ts and NAME_TEST.ts (or .npz/.csv/.parquet); none found there"
        )
    if len(pairs) > 1:
        names = ", ".join(b for b, _, _ in pairs)
        raise UserError(
            f"data.path {folder}: holds several datasets ({names}); point data.path at one file or a folder with one pair"
        )
    base, train, test = pairs[0]
    loader = LOADERS[train.suffix.lower()]
    check_options(loader, options, f"{train.suffix} files (data.path {folder})")
    options.setdefault("name", base)
    if loader is load_ts:
        return load_ts_pair(train, test, **options)
    return _concat(loader(train, **options), loader(test, **options), test)


def _concat(a: SequenceData, b: SequenceData, source: Path) -> SequenceData:
    """Join a train and a test file with the split 0/1, aligning classes and padding."""
    if a.meta.task != b.meta.task or a.x.shape[2] != b.x.shape[2]:
        raise UserError(f"{source}: its task or channel count differs from the _TRAIN file's; the two files must match")
    t = max(a.x.shape[1], b.x.shape[1])

    def pad(v: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(v, (0, 0, 0, t - v.shape[1])) if v.dim() == 3 else v

    ya, yb, meta = a.y, b.y, a.meta
    if meta.task == "classification":  # one class list for both files
        from tunelab.data.assemble import class_ids

        names = list(a.meta.class_names) + list(b.meta.class_names)
        labels = [names[int(i)] for i in a.y] + [names[len(a.meta.class_names) + int(i)] for i in b.y]
        y, classes = class_ids(labels, str(source))
        ya, yb = y[: len(a)], y[len(a) :]
        meta = dataclasses.replace(meta, n_classes=len(classes), class_names=tuple(classes), n_outputs=len(classes))
    meta = dataclasses.replace(meta, max_len=t)
    return SequenceData(
        x=torch.cat([pad(a.x), pad(b.x)]),
        lengths=torch.cat([a.lengths, b.lengths]),
        y=torch.cat([pad(ya), pad(yb)]),
        meta=meta,
        split=torch.cat([torch.zeros(len(a), dtype=torch.long), torch.ones(len(b), dtype=torch.long)]),
    )
