"""The same data loads the same from .ts, .npz (three layouts), .csv, .parquet and a TRAIN/TEST folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.data.writers import (
    long_frame,
    small_dataset,
    ts_text,
    write_csv,
    write_npz_object,
    write_npz_padded,
    write_ts,
)
from tunelab.config import DataConfig
from tunelab.data import SequenceData, load_dataset, load_file


def assert_same(a: SequenceData, b: SequenceData) -> None:
    assert torch.equal(a.lengths, b.lengths)
    assert a.x.shape == b.x.shape
    torch.testing.assert_close(a.x, b.x)
    assert torch.equal(a.y, b.y)
    assert a.meta.class_names == b.meta.class_names
    assert a.meta.channels == b.meta.channels and a.meta.task == b.meta.task


@pytest.fixture
def data() -> tuple[list[np.ndarray], list[str], list[int]]:
    return small_dataset()


def test_all_formats_agree(tmp_path: Path, data) -> None:
    seqs, labels, _ = data
    ref = load_file(write_ts(tmp_path / "d.ts", seqs, labels))
    assert ref.meta.class_names == ("a", "b", "c") and ref.meta.task == "classification"
    assert ref.lengths.tolist() == [len(s) for s in seqs]
    np.testing.assert_allclose(ref.x[0, : len(seqs[0])].numpy(), seqs[0], rtol=1e-6)
    assert float(ref.x[ref.lengths.argmin(), -1].abs().sum()) == 0.0  # padding is zeros

    flat = tmp_path / "flat.npz"
    np.savez(flat, x=np.concatenate(seqs), y=np.array(labels), lengths=np.array([len(s) for s in seqs]))
    long_frame(seqs, labels).to_parquet(tmp_path / "d.parquet")
    shuffled = long_frame(seqs, labels).sample(frac=1.0, random_state=0)  # rows in any order: 'time' sorts them
    shuffled = (
        shuffled.set_index(shuffled["id"].map(lambda s: int(s[3:]))).sort_index(kind="stable").reset_index(drop=True)
    )
    shuffled.to_csv(tmp_path / "shuffled.csv", index=False)
    others = [
        load_file(write_npz_padded(tmp_path / "padded.npz", seqs, labels)),
        load_file(write_npz_object(tmp_path / "object.npz", seqs, labels), {"allow_pickle": True}),
        load_file(flat),
        load_file(write_csv(tmp_path / "d.csv", seqs, labels)),
        load_file(tmp_path / "d.parquet"),
        load_file(tmp_path / "shuffled.csv"),
    ]
    for other in others:
        assert_same(ref, other)


def test_split_and_folder_agree(tmp_path: Path, data) -> None:
    seqs, labels, split = data
    folder = tmp_path / "small"
    folder.mkdir()
    n_train = split.count(0)
    write_ts(folder / "Small_TRAIN.ts", seqs[:n_train], labels[:n_train])
    write_ts(folder / "Small_TEST.ts", seqs[n_train:], labels[n_train:])
    from_folder = load_dataset(DataConfig(path=str(folder)))
    assert from_folder.meta.name == "Small"
    assert from_folder.split is not None and from_folder.split.tolist() == split
    for other in (
        load_file(write_npz_padded(tmp_path / "s.npz", seqs, labels, split)),
        load_file(write_csv(tmp_path / "s.csv", seqs, labels, split)),
    ):
        assert_same(from_folder, other)
        assert other.split is not None and other.split.tolist() == split


def test_csv_folder_pair(tmp_path: Path, data) -> None:
    seqs, labels, split = data
    n = split.count(0)
    write_csv(tmp_path / "G_TRAIN.csv", seqs[:n], labels[:n])
    write_csv(tmp_path / "G_TEST.csv", seqs[n:], labels[n:])
    d = load_file(tmp_path)
    assert d.split is not None and d.split.tolist() == split
    assert_same(d, load_file(write_ts(tmp_path / "all.ts", seqs, labels)))


def test_csv_custom_column_names(tmp_path: Path, data) -> None:
    seqs, labels, _ = data
    frame = long_frame(seqs, labels).rename(columns={"id": "utt", "time": "frame_no", "label": "speaker"})
    frame["note"] = "x"  # a non-feature text column, excluded by listing the features
    frame.to_csv(tmp_path / "c.csv", index=False)
    opts = {"id_col": "utt", "time_col": "frame_no", "label_col": "speaker", "feature_cols": ["f0", "f1"]}
    assert_same(load_file(tmp_path / "c.csv", opts), load_file(write_ts(tmp_path / "c.ts", seqs, labels)))


def test_numeric_labels_sort_numerically(tmp_path: Path) -> None:
    seqs = [np.ones((3, 1)) * i for i in range(4)]
    d = load_file(write_ts(tmp_path / "n.ts", seqs, ["10", "9", "2", "9"]))
    assert d.meta.class_names == ("2", "9", "10")
    assert d.y.tolist() == [2, 1, 0, 1]
    np.savez(tmp_path / "n.npz", x=np.stack(seqs), y=np.array([10, 9, 2, 9]))
    assert load_file(tmp_path / "n.npz").y.tolist() == [2, 1, 0, 1]


def test_ts_missing_values(tmp_path: Path) -> None:
    head = "@problemName m\n@missing true\n@classLabel true a b\n@data\n"
    text = head + "1,2,?,?:5,6,?,?:a\n1,?,3,4:5,6,7,8:b\n"
    (tmp_path / "m.ts").write_text(text)
    d = load_file(tmp_path / "m.ts", {"missing": "interpolate"})
    assert d.lengths.tolist() == [2, 4]  # trailing '?' in every channel is padding
    assert d.x[1, :, 0].tolist() == [1, 2, 3, 4]  # the interior gap is interpolated
    z = load_file(tmp_path / "m.ts", {"missing": "zero"})
    assert z.x[1, 1, 0] == 0


def test_ts_regression_and_npz_seq2seq(tmp_path: Path) -> None:
    text = "@problemName r\n@targetLabel true\n@data\n1,2,3:0.5\n4,5:1.25\n"
    (tmp_path / "r.ts").write_text(text)
    d = load_file(tmp_path / "r.ts")
    assert d.meta.task == "regression" and d.y.tolist() == [[0.5], [1.25]] and d.meta.out_dim == 1
    x = np.random.default_rng(0).normal(size=(5, 6, 2))
    np.savez(tmp_path / "s.npz", x=x, y=x[..., :1] * 2, lengths=np.array([6, 5, 4, 3, 2]))
    s = load_file(tmp_path / "s.npz")
    assert s.meta.task == "seq2seq" and s.y.shape == (5, 6, 1) and s.meta.out_dim == 1
    assert float(s.y[4, 2:].abs().sum()) == 0.0  # target padding is zero like the input's


def test_csv_regression_targets(tmp_path: Path, data) -> None:
    seqs, _, _ = data
    frame = long_frame(seqs, ["a"] * len(seqs)).drop(columns="label")
    frame["target"] = frame["id"].map(lambda s: int(s[3:]) * 0.5 + 0.25)
    frame.to_csv(tmp_path / "r.csv", index=False)
    d = load_file(tmp_path / "r.csv")
    assert d.meta.task == "regression"
    assert d.y[:, 0].tolist() == [i * 0.5 + 0.25 for i in range(len(seqs))]


def test_ts_header_order_and_comments(tmp_path: Path, data) -> None:
    seqs, labels, _ = data
    text = ts_text(seqs, labels).replace("@data\n", "# a comment between\n\n@data\n")
    (tmp_path / "c.ts").write_text(text)
    assert_same(load_file(tmp_path / "c.ts"), load_file(write_ts(tmp_path / "d.ts", seqs, labels)))
