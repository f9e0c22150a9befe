"""Write one small dataset in every supported format (for agreement and error tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def small_dataset(n: int = 12, channels: int = 2, seed: int = 0) -> tuple[list[np.ndarray], list[str], list[int]]:
    """Variable-length float sequences (values exact in text), labels a/b/c and a train/test split."""
    rng = np.random.default_rng(seed)
    seqs = [np.round(rng.normal(size=(int(rng.integers(3, 8)), channels)), 4) for _ in range(n)]
    labels = [("a", "b", "c")[i % 3] for i in range(n)]
    split = [0] * (n - 3) + [1] * 3
    return seqs, labels, split


def ts_text(seqs: list[np.ndarray], labels: list[str], *, header: str | None = None) -> str:
    classes = " ".join(sorted(set(labels)))
    head = header or (
        "# a test file\n@problemName small\n@timeStamps false\n@missing false\n@univariate false\n"
        f"@dimensions {seqs[0].shape[1]}\n@equalLength false\n@classLabel true {classes}\n@data\n"
    )
    rows = [
        ":".join(",".join(f"{v:g}" for v in s[:, c]) for c in range(s.shape[1])) + f":{lab}"
        for s, lab in zip(seqs, labels, strict=True)
    ]
    return head + "\n".join(rows) + "\n"


def write_ts(path: Path, seqs: list[np.ndarray], labels: list[str]) -> Path:
    path.write_text(ts_text(seqs, labels))
    return path


def write_npz_padded(path: Path, seqs: list[np.ndarray], labels: list[str], split: list[int] | None = None) -> Path:
    t = max(len(s) for s in seqs)
    x = np.zeros((len(seqs), t, seqs[0].shape[1]))
    for i, s in enumerate(seqs):
        x[i, : len(s)] = s
    extra = {} if split is None else {"split": np.array(split)}
    np.savez(path, x=x, y=np.array(labels), lengths=np.array([len(s) for s in seqs]), **extra)
    return path


def write_npz_object(path: Path, seqs: list[np.ndarray], labels: list[str], split: list[int] | None = None) -> Path:
    x = np.empty(len(seqs), dtype=object)
    x[:] = seqs
    extra = {} if split is None else {"split": np.array(split)}
    np.savez(path, x=x, labels=np.array(labels), **extra)
    return path


def long_frame(seqs: list[np.ndarray], labels: list[str], split: list[int] | None = None) -> pd.DataFrame:
    rows = []
    for i, (s, lab) in enumerate(zip(seqs, labels, strict=True)):
        for t, step in enumerate(s):
            row = {"id": f"seq{i}", "time": t, "label": lab, **{f"f{c}": v for c, v in enumerate(step)}}
            if split is not None:
                row["split"] = "test" if split[i] else "train"
            rows.append(row)
    return pd.DataFrame(rows)


def write_csv(path: Path, seqs: list[np.ndarray], labels: list[str], split: list[int] | None = None) -> Path:
    long_frame(seqs, labels, split).to_csv(path, index=False)
    return path
