"""Long-format tables: ``.csv`` and ``.parquet`` (one row per time step).

Column naming convention (each can be renamed with an option of the same name):

==============  =====================================================================  =============
column          meaning                                                                option
==============  =====================================================================  =============
``id``          sequence id; rows with the same id form one sequence, in order of      ``id_col``
                first appearance (aliases: sequence_id, series_id, sample_id)
``time``        order of the steps within a sequence (optional: file order without     ``time_col``
                it; aliases: t, step, timestep, frame)
``label``       the sequence's label, repeated on each of its rows (aliases: y,        ``label_col``
                target, class); a list of columns gives multi-target regression, and
                with ``task=seq2seq`` the columns are per-step targets
``split``       optional official split: train/test (or 0/1), constant per sequence    ``split_col``
*every other*   a numeric feature (one channel each), or exactly ``feature_cols``      ``feature_cols``
==============  =====================================================================  =============

Missing feature values (empty cells) follow ``missing`` like every format; a missing label is
an error.  Parquet needs ``pyarrow`` (``pip install tunelab[parquet]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tunelab.data.assemble import assemble
from tunelab.data.base import SequenceData
from tunelab.errors import UserError

__all__ = ["load_table"]

ALIASES = {
    "id_col": ("id", "sequence_id", "series_id", "sample_id"),
    "time_col": ("time", "t", "step", "timestep", "frame"),
    "label_col": ("label", "y", "target", "class"),
    "split_col": ("split",),
}


def _read(p: Path, sep: str | None) -> Any:
    import pandas as pd

    try:
        if p.suffix.lower() == ".parquet":
            return pd.read_parquet(p)
        return pd.read_csv(p, sep=sep if sep is not None else ",", skipinitialspace=True)
    except ImportError as exc:
        raise UserError(
            f"{p}: reading parquet needs pyarrow ({exc}); pip install 'tunelab[parquet]' or save as .csv"
        ) from None
    except pd.errors.EmptyDataError:
        raise UserError(f"{p}: the file is empty; write a header row and one row per time step") from None
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{p}: cannot parse it as a table ({first}); check the separator and quoting") from None


def _column(cols: list[str], option: str, given: str | None, p: Path, required: bool) -> str | None:
    if given is not None:
        if given not in cols:
            raise UserError(f"{p}: no column '{given}' (data.options.{option}); columns are {', '.join(cols)}")
        return given
    found = next((c for c in ALIASES[option] if c in cols), None)
    if found is None and required:
        name = ALIASES[option][0]
        raise UserError(
            f"{p}: no '{name}' column (columns: {', '.join(cols)}); name the column '{name}' or set data.options.{option}"
        )
    return found


def load_table(
    path: str | Path,
    *,
    id_col: str | None = None,
    time_col: str | None = None,
    label_col: str | list[str] | None = None,
    feature_cols: list[str] | None = None,
    split_col: str | None = None,
    task: str = "auto",
    missing: str = "error",
    sep: str | None = None,
    name: str | None = None,
) -> SequenceData:
    """Load a long-format ``.csv``/``.parquet`` table (see the module doc for its columns)."""

    p = Path(path)
    df = _read(p, sep)
    df.columns = [str(c).strip() for c in df.columns]
    cols = list(df.columns)
    if len(df) == 0:
        raise UserError(f"{p}: the table has a header but no rows; add one row per time step")
    idc = _column(cols, "id_col", id_col, p, required=True)
    tc = _column(cols, "time_col", time_col, p, required=False)
    sc = _column(cols, "split_col", split_col, p, required=False)
    lcs, feats = _labels_and_features(df, cols, (idc, tc, sc), label_col, feature_cols, p)
    if df[idc].isna().any():
        row = int(np.flatnonzero(df[idc].isna().to_numpy())[0])
        raise UserError(f"{p}: row {row + 2} has no sequence id in '{idc}'; every row needs one")  # +2: header, 1-based

    codes, uniques, order = _order(df, idc, tc, p)
    df = df.iloc[order]
    codes = codes[order]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    bounds = np.r_[starts[1:], len(df)]
    values = df[feats].to_numpy(dtype=np.float64)
    seqs = [values[a:b] for a, b in zip(starts, bounds, strict=True)]
    ids = [str(uniques[codes[a]]) for a in starts]

    label_frame = df[lcs]
    if task == "seq2seq":
        tv = label_frame.to_numpy(dtype=np.float64)
        labels: Any = [tv[a:b] for a, b in zip(starts, bounds, strict=True)]
    else:
        labels = _per_sequence(label_frame, starts, bounds, ids, p, lcs)
    split = None
    if sc is not None:
        split = _per_sequence(df[[sc]], starts, bounds, ids, p, [sc])
    try:
        return assemble(
            seqs, labels, source=str(p), name=name or p.stem, task=task, split=split, missing=missing, what="sequence"
        )
    except UserError as exc:
        raise UserError(_name_ids(str(exc), ids)) from None


def _labels_and_features(
    df: Any, cols: list[str], named: tuple[str | None, ...], label_col: Any, feature_cols: list[str] | None, p: Path
) -> tuple[list[str], list[str]]:
    """The label column(s) and the numeric feature columns (every other column by default)."""
    import pandas as pd

    idc, tc, sc = named
    if isinstance(label_col, list | tuple):
        for c in label_col:
            _column(cols, "label_col", c, p, required=True)
        lcs = list(label_col)
    else:
        lcs = [_column(cols, "label_col", label_col, p, required=True)]  # type: ignore[list-item]
    used = {c for c in (idc, tc, sc, *lcs) if c is not None}
    if feature_cols is not None:
        for c in feature_cols:
            if c not in cols:
                raise UserError(
                    f"{p}: no feature column '{c}' (data.options.feature_cols); columns are {', '.join(cols)}"
                )
        feats = list(feature_cols)
    else:
        feats = [c for c in cols if c not in used]
    if not feats:
        raise UserError(
            f"{p}: no feature columns besides {', '.join(sorted(used))}; add numeric columns, one per channel"
        )
    for c in feats:
        if not pd.api.types.is_numeric_dtype(df[c]):
            bad = df[c][pd.to_numeric(df[c], errors="coerce").isna() & df[c].notna()]
            raise UserError(
                f"{p}: feature column '{c}' is not numeric (e.g. {bad.iloc[0]!r}); fix it or list the numeric columns in data.options.feature_cols"
            )
    return lcs, feats


def _order(df: Any, idc: str | None, tc: str | None, p: Path) -> tuple[Any, Any, Any]:
    """Sequence codes (in order of first appearance), their ids, and the row order: by sequence,
    then by time when a time column is given (numbers or dates)."""
    import pandas as pd

    codes, uniques = pd.factorize(df[idc], sort=False)  # sequences in order of first appearance
    if tc is not None:
        t = df[tc]
        if not pd.api.types.is_numeric_dtype(t):
            t = pd.to_datetime(t, errors="coerce")
            if t.isna().any():
                raise UserError(
                    f"{p}: time column '{tc}' holds values that are neither numbers nor dates; fix it or set data.options.time_col"
                )
            t = t.astype("int64")
        order = np.lexsort((t.to_numpy(), codes))
    else:
        order = np.argsort(codes, kind="stable")
    return codes, uniques, order


def _per_sequence(frame: Any, starts: np.ndarray, bounds: np.ndarray, ids: list[str], p: Path, cols: list[str]) -> Any:
    """The one value per sequence of per-row columns (which must be constant within it)."""
    first = frame.to_numpy()[starts]
    rows = frame.to_numpy()
    ref = np.repeat(first, bounds - starts, axis=0)
    same = (rows == ref) | (_isna(rows) & _isna(ref))
    if not same.all():
        r = int(np.flatnonzero(~same.all(axis=1))[0])
        seq = int(np.searchsorted(starts, r, side="right") - 1)
        raise UserError(
            f"{p}: '{cols[0]}' changes within sequence id {ids[seq]!r}; it must be the same on every row of a sequence "
            "(for per-step targets set data.options.task=seq2seq)"
        )
    out = first
    return out[:, 0] if len(cols) == 1 else out.astype(np.float64)


def _isna(a: np.ndarray) -> np.ndarray:
    import pandas as pd

    return np.asarray(pd.isna(a))


def _name_ids(message: str, ids: list[str]) -> str:
    """Refer to a table's sequences by their id, not their position."""
    import re

    def sub(m: re.Match[str]) -> str:
        i = int(m.group(1))
        return f"sequence id {ids[i]!r}" if i < len(ids) else m.group(0)

    return re.sub(r"\bsequence (\d+)\b", sub, message)
