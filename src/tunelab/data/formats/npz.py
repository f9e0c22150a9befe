"""NumPy ``.npz`` files.

Keys (names can be changed with ``x_key``/``y_key``):

* ``x`` — the sequences, one of
  - ``[N, T, C]`` (or ``[N, T]`` for one channel), padded; with ``lengths`` the steps past each
    length are ignored, without it trailing all-NaN steps are padding;
  - ``[sum(T_i), C]`` — every sequence's steps concatenated — together with ``lengths``;
  - an object array of ``[T_i, C]`` arrays (``np.array(list_of_arrays, dtype=object)``).
    NumPy stores object arrays with pickle, which can run code when loaded, so this needs
    ``data.options.allow_pickle=true`` for a file you trust;
* ``y`` (or ``labels``) — ``[N]`` class labels or numbers, ``[N, D]`` regression targets, or
  per-step targets ``[N, T, D]`` (seq2seq);
* optional ``lengths`` ``[N]``, ``split`` ``[N]`` (0/1 or "train"/"test": an official split) and
  ``class_names`` (the names of integer class ids ``0..K-1``).
"""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunelab.data.assemble import assemble
from tunelab.data.base import SequenceData
from tunelab.errors import UserError

__all__ = ["load_npz"]

X_KEYS = ("x", "X", "data", "inputs")
Y_KEYS = ("y", "Y", "labels", "label", "targets", "target")


def _pick(
    keys: list[str], wanted: str | None, candidates: tuple[str, ...], p: Path, what: str, option: str
) -> str | None:
    if wanted is not None:
        if wanted not in keys:
            raise UserError(f"{p}: has no array '{wanted}' (data.options.{option}); it holds {', '.join(keys)}")
        return wanted
    return next((k for k in candidates if k in keys), None)


def load_npz(
    path: str | Path,
    *,
    x_key: str | None = None,
    y_key: str | None = None,
    task: str = "auto",
    missing: str = "error",
    allow_pickle: bool = False,
    name: str | None = None,
) -> SequenceData:
    """Load sequences and labels from an ``.npz`` file (see the module doc for its keys)."""
    p = Path(path)
    if p.is_file() and not zipfile.is_zipfile(p):  # np.load would try it as a pickle (or a bare .npy)
        raise UserError(f"{p}: not a .npz file (not a zip archive); save the arrays with numpy.savez")
    try:
        with np.load(p, allow_pickle=allow_pickle) as z:
            keys = list(z.files)
            xk = _pick(keys, x_key, X_KEYS, p, "sequences", "x_key")
            yk = _pick(keys, y_key, Y_KEYS, p, "labels", "y_key")
            if xk is None:
                raise UserError(
                    f"{p}: no sequence array; name it 'x' or set data.options.x_key (it holds {', '.join(keys)})"
                )
            if yk is None:
                raise UserError(
                    f"{p}: no label array; name it 'y' or set data.options.y_key (it holds {', '.join(keys)})"
                )
            arrays = {k: z[k] for k in {xk, yk, "lengths", "split", "class_names"} & set(keys)}
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise UserError(
                f"{p}: holds object arrays, which NumPy loads with pickle (it can run code); if you trust the file set "
                "data.options.allow_pickle=true, or save x padded as [N, T, C] with 'lengths'"
            ) from None
        raise UserError(f"{p}: not a readable .npz file ({exc}); save it with numpy.savez") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"{p}: not a readable .npz file ({exc}); save it with numpy.savez") from None
    seqs = _sequences(arrays[xk], arrays.get("lengths"), p)
    labels: Any = arrays[yk]
    if labels.dtype == object and labels.ndim == 1 and task in ("auto", "seq2seq"):
        items = list(labels)
        if items and all(np.asarray(v).ndim == 2 for v in items):
            labels = [np.asarray(v, dtype=np.float64) for v in items]
    names = arrays.get("class_names")
    if names is not None and isinstance(labels, np.ndarray) and labels.dtype.kind in "iu":
        if labels.min() < 0 or labels.max() >= len(names):
            raise UserError(
                f"{p}: labels run {labels.min()}..{labels.max()} but there are {len(names)} class_names; fix one of them"
            )
        labels = np.asarray([str(n) for n in names])[labels]  # names keep their given order below
        declared: list[str] | None = [str(n) for n in names]
    else:
        declared = None
    data = assemble(
        seqs, labels, source=str(p), name=name or p.stem, task=task, split=arrays.get("split"), missing=missing
    )
    if declared is not None and data.meta.task == "classification":
        data = _reorder(data, declared)
    return data


def _sequences(x: np.ndarray, lengths: np.ndarray | None, p: Path) -> list[Any]:
    if x.dtype == object:
        return list(x)
    if x.size == 0:
        raise UserError(f"{p}: the sequence array is empty (shape {x.shape}); save at least one sequence")
    if x.dtype.kind not in "fiub":
        raise UserError(f"{p}: the sequence array has dtype {x.dtype}; store numbers (float)")
    if lengths is not None:
        lengths = np.asarray(lengths).astype(np.int64).reshape(-1)
        if (lengths < 1).any():
            raise UserError(
                f"{p}: 'lengths' holds a value below 1 (sequence {int(np.argmin(lengths))}); every sequence needs >= 1 step"
            )
    if x.ndim == 2 and lengths is not None and len(lengths) != len(x) and lengths.sum() == len(x):
        return np.split(x, np.cumsum(lengths)[:-1])  # the concatenated layout
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3:
        raise UserError(
            f"{p}: the sequence array has shape {x.shape}; use [N, T, C], [N, T], or [sum(T_i), C] with 'lengths'"
        )
    if lengths is None:
        return list(x)
    if len(lengths) != len(x):
        raise UserError(f"{p}: 'lengths' has {len(lengths)} entries for {len(x)} sequences; give one per sequence")
    if lengths.max() > x.shape[1]:
        raise UserError(f"{p}: 'lengths' goes up to {lengths.max()} but x has only {x.shape[1]} steps; fix 'lengths'")
    return [x[i, :n] for i, n in enumerate(lengths)]


def _reorder(data: SequenceData, declared: list[str]) -> SequenceData:
    """Class ids follow the file's ``class_names`` order (ids 0..K-1 stay what they were)."""
    present = [n for n in declared if n in data.meta.class_names]  # names without samples drop out
    remap = torch.tensor([present.index(n) for n in data.meta.class_names])
    meta = dataclasses.replace(data.meta, class_names=tuple(present))
    return dataclasses.replace(data, y=remap[data.y], meta=meta)
