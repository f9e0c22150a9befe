"""Turn raw arrays from any file format into a validated ``SequenceData``.

Every loader (``.ts``, ``.npz``, ``.csv``/``.parquet``) reduces its file to the same raw form —
a list of ``[T_i, C]`` float arrays, one label entry per sequence, an optional official split —
and this module does the checks once, so every format fails the same way on the same problem:
one line naming the file (and sequence) and the fix.

Conventions shared by all formats:

* trailing steps that are missing (NaN) in every channel are padding and are trimmed, so a
  variable-length dataset stored NaN-padded loads with its true lengths;
* other missing values are an error unless ``missing="interpolate"`` (linear in time, edges
  held) or ``missing="zero"``; infinite values are always an error;
* class ids follow the sorted labels (numerically when every label is a number), so the same
  data gives the same ids in every format; ``class_names`` are the labels as text;
* ``task="auto"``: text, integer or integer-valued labels are classes; other numbers, or a
  ``[N, D]`` array, are regression targets; per-step ``[T_i, D]`` targets are seq2seq.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

from tunelab.data.base import DataMeta, SequenceData, Task
from tunelab.errors import UserError

__all__ = ["Missing", "assemble", "class_ids", "parse_split", "resolve_task"]

log = logging.getLogger(__name__)

Missing = Literal["error", "interpolate", "zero"]
TASKS = ("auto", "classification", "regression", "seq2seq")


def assemble(
    seqs: Sequence[np.ndarray],
    labels: Any,
    *,
    source: str,
    name: str,
    task: str = "auto",
    split: Any = None,
    class_names: Sequence[str] | None = None,
    missing: str = "error",
    what: str = "sequence",
) -> SequenceData:
    """Validate raw sequences and labels from ``source`` and pad them into a SequenceData.

    ``seqs``: ``[T_i, C]`` arrays.  ``labels``: ``[N]`` class labels or numbers, ``[N, D]``
    regression targets, or a list of ``[T_i, D]`` per-step targets (seq2seq).  ``split``: ``[N]``
    of 0/1 or "train"/"test" (an official split).  ``class_names``: declared class labels (ids
    follow it when given; labels outside it are an error).  ``what`` names a row in messages
    (e.g. "case" for .ts, "id" for tables).
    """
    if missing not in ("error", "interpolate", "zero"):
        raise UserError(f"{source}: data.options.missing={missing!r} is not valid; use error, interpolate or zero")
    if task not in TASKS:
        raise UserError(f"{source}: data.options.task={task!r} is not valid; use one of {', '.join(TASKS)}")
    if len(seqs) == 0:
        raise UserError(f"{source}: no sequences found; the file holds no data rows")
    if labels is None:
        raise UserError(f"{source}: no labels found; add a label (or target) for every sequence")
    arrays = _check_sequences(seqs, source, missing, what)
    n = len(arrays)
    if len(labels) != n:
        raise UserError(f"{source}: {len(labels)} labels for {n} sequences; give exactly one label per sequence")
    lengths = torch.tensor([len(a) for a in arrays], dtype=torch.long)
    x = _pad(arrays)
    task_: Task = resolve_task(labels, task, source)
    split_t = parse_split(split, n, source)
    if task_ == "classification":
        y, names = class_ids(labels, source, class_names, what)
        meta = DataMeta(name, x.shape[2], x.shape[1], "classification", len(names), tuple(names), len(names))
    elif task_ == "regression":
        y = _regression_targets(labels, source, what)
        meta = DataMeta(name, x.shape[2], x.shape[1], "regression", 0, (), int(y.shape[1]))
    else:
        y = _seq2seq_targets(labels, lengths, x.shape[1], source, missing, what)
        meta = DataMeta(name, x.shape[2], x.shape[1], "seq2seq", 0, (), int(y.shape[2]))
    return SequenceData(x=x, lengths=lengths, y=y, meta=meta, split=split_t)


# --------------------------------------------------------------------------- sequences


def _check_sequences(seqs: Sequence[Any], source: str, missing: str, what: str) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    channels: int | None = None
    for i, raw in enumerate(seqs):
        try:
            a = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError):
            raise UserError(
                f"{source}: {what} {i} is not a numeric [time, channels] array; store numbers only"
            ) from None
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2:
            raise UserError(f"{source}: {what} {i} has shape {a.shape}; each sequence must be [time, channels]")
        if channels is None:
            channels = a.shape[1]
        elif a.shape[1] != channels:
            raise UserError(
                f"{source}: {what} {i} has {a.shape[1]} channels but {what} 0 has {channels}; "
                "every sequence needs the same channels"
            )
        if np.isinf(a).any():
            t = int(np.argwhere(np.isinf(a))[0][0])
            raise UserError(f"{source}: {what} {i} has an infinite value at step {t}; replace or drop it")
        a = _trim_trailing_missing(a)
        if len(a) == 0:
            raise UserError(f"{source}: {what} {i} is empty (no valid time steps); drop it or fill it")
        if np.isnan(a).any():
            a = _fill_missing(a, source, i, missing, what)
        out.append(a.astype(np.float32))
    return out


def _trim_trailing_missing(a: np.ndarray) -> np.ndarray:
    valid = ~np.isnan(a).all(axis=1)
    if valid.all():
        return a
    last = np.flatnonzero(valid)
    return a[: last[-1] + 1] if len(last) else a[:0]


def _fill_missing(a: np.ndarray, source: str, i: int, missing: str, what: str) -> np.ndarray:
    if missing == "error":
        t, c = (int(v) for v in np.argwhere(np.isnan(a))[0])
        raise UserError(
            f"{source}: {what} {i} has a missing value (NaN/?) at step {t}, channel {c}; fill it, or set "
            "data.options.missing=interpolate (or zero)"
        )
    a = a.copy()
    if missing == "zero":
        a[np.isnan(a)] = 0.0
        return a
    steps = np.arange(len(a))
    for c in range(a.shape[1]):
        nan = np.isnan(a[:, c])
        if nan.all():
            a[:, c] = 0.0
        elif nan.any():
            a[nan, c] = np.interp(steps[nan], steps[~nan], a[~nan, c])  # edges hold the nearest value
    return a


def _pad(arrays: list[np.ndarray]) -> torch.Tensor:
    t_max = max(len(a) for a in arrays)
    x = np.zeros((len(arrays), t_max, arrays[0].shape[1]), dtype=np.float32)
    for i, a in enumerate(arrays):
        x[i, : len(a)] = a
    return torch.from_numpy(x)


# --------------------------------------------------------------------------- targets


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float | np.floating):
        return math.isnan(float(v))
    return isinstance(v, str | np.str_) and v.strip() == ""


def _as_number(v: Any) -> float | None:
    if isinstance(v, bool | np.bool_):
        return float(v)
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def resolve_task(labels: Any, task: str, source: str) -> Task:
    """The task the labels describe (``task`` unless it is "auto")."""
    if task != "auto":
        return task  # type: ignore[return-value]
    if isinstance(labels, np.ndarray) and labels.dtype != object:
        if labels.ndim == 3:
            return "seq2seq"
        if labels.ndim == 2:
            return "regression"
        if labels.dtype.kind in "biuUS":
            return "classification"
        if labels.dtype.kind == "f":
            finite = labels[np.isfinite(labels)]
            return "classification" if np.all(finite == np.round(finite)) else "regression"
    items = list(labels)
    if items and all(isinstance(v, np.ndarray) and v.ndim == 2 for v in items):
        return "seq2seq"
    numbers = [_as_number(v) for v in items if not _is_missing(v)]
    if numbers and all(v is not None for v in numbers) and any(float(v) != round(float(v)) for v in numbers):  # type: ignore[arg-type]
        return "regression"
    return "classification"


def _label_text(v: Any) -> str:
    num = _as_number(v)
    if num is not None and not isinstance(v, str | np.str_) and num == round(num):
        return str(int(num))  # 3, 3.0 and np.int8(3) are all the class "3"
    return str(v).strip()


def _sort_key(names: list[str]) -> list[str]:
    numbers = [_as_number(s) for s in names]
    if all(v is not None for v in numbers):
        return [s for _, s in sorted(zip(numbers, names, strict=True), key=lambda p: p[0])]  # type: ignore[arg-type, return-value]
    return sorted(names)


def class_ids(
    labels: Any, source: str, declared: Sequence[str] | None = None, what: str = "sequence"
) -> tuple[torch.Tensor, list[str]]:
    """Class ids (int64 ``[N]``) and class names for raw labels (see the module doc for the order)."""
    texts: list[str] = []
    for i, v in enumerate(labels):
        if _is_missing(v):
            raise UserError(f"{source}: the label of {what} {i} is missing; every sequence needs a label")
        texts.append(_label_text(v))
    if declared is not None:
        names = [_label_text(d) for d in declared]
        unknown = sorted(set(texts) - set(names))
        if unknown:
            raise UserError(
                f"{source}: label {unknown[0]!r} is not among the declared classes {names}; fix the label or the declaration"
            )
    else:
        names = _sort_key(sorted(set(texts)))
    if len(set(texts)) < 2:
        raise UserError(
            f"{source}: every sequence has the class {texts[0]!r}; classification needs at least 2 classes "
            "(for numeric targets set data.options.task=regression)"
        )
    index = {s: k for k, s in enumerate(names)}
    return torch.tensor([index[s] for s in texts], dtype=torch.long), names


def _regression_targets(labels: Any, source: str, what: str) -> torch.Tensor:
    try:
        y = np.asarray(labels, dtype=np.float64)
    except (TypeError, ValueError):
        raise UserError(
            f"{source}: regression targets must be numbers; set data.options.task=classification for class labels"
        ) from None
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        raise UserError(f"{source}: regression targets have shape {y.shape}; use [N] or [N, D]")
    bad = ~np.isfinite(y)
    if bad.any():
        i = int(np.argwhere(bad)[0][0])
        raise UserError(
            f"{source}: the target of {what} {i} is missing or infinite; every sequence needs a finite target"
        )
    return torch.from_numpy(y.astype(np.float32))


def _seq2seq_targets(
    labels: Any, lengths: torch.Tensor, t_max: int, source: str, missing: str, what: str
) -> torch.Tensor:
    if isinstance(labels, np.ndarray) and labels.dtype != object and labels.ndim == 3:
        items = [labels[i, : int(n)] for i, n in enumerate(lengths)]
    else:
        items = list(labels)
    arrays = []
    for i, (a, n) in enumerate(zip(items, lengths.tolist(), strict=True)):
        a = np.asarray(a, dtype=np.float64)
        a = a[:, None] if a.ndim == 1 else a
        if a.ndim != 2 or len(a) < n:
            raise UserError(
                f"{source}: the per-step target of {what} {i} has shape {a.shape}; it needs [time, channels] with {n} steps like its input"
            )
        arrays.append(a[:n])
    checked = _check_sequences(arrays, source + " (targets)", missing, what)
    for i, (a, n) in enumerate(zip(checked, lengths.tolist(), strict=True)):
        if len(a) != n:  # trailing NaN in the target only: fill like any other gap
            raise UserError(f"{source}: the per-step target of {what} {i} ends in missing values; fill them")
    y = _pad(checked)
    if y.shape[1] < t_max:
        y = torch.nn.functional.pad(y, (0, 0, 0, t_max - y.shape[1]))
    return y


def parse_split(split: Any, n: int, source: str) -> torch.Tensor | None:
    """An official split as int64 ``[N]`` (0 train, 1 test), or None when there is none."""
    if split is None:
        return None
    values = list(split)
    if len(values) != n:
        raise UserError(f"{source}: the split has {len(values)} entries for {n} sequences; give one per sequence")
    codes = []
    for i, v in enumerate(values):
        text = str(v).strip().lower()
        if text in ("0", "0.0", "train", "training", "false"):
            codes.append(0)
        elif text in ("1", "1.0", "test", "testing", "true"):
            codes.append(1)
        else:
            raise UserError(
                f"{source}: split value {v!r} of sequence {i} is not train/test (or 0/1); fix the split column"
            )
    out = torch.tensor(codes, dtype=torch.long)
    if out.min() == out.max():
        log.info("%s: the split names only one part; splitting by data.test_fraction instead", source)
        return None
    return out
