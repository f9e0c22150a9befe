"""Malformed data gives one-line UserErrors that name the file (and line) and the fix."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.data.writers import long_frame, small_dataset, ts_text, write_csv
from tunelab.config import DataConfig
from tunelab.data import load_dataset, load_file, prepare
from tunelab.errors import UserError

HEAD = "@problemName bad\n@dimensions 2\n@classLabel true a b\n@data\n"


def error_of(path: Path, options: dict | None = None) -> str:
    with pytest.raises(UserError) as info:
        load_file(path, options)
    message = str(info.value)
    assert "\n" not in message, message
    assert str(path) in message or path.name in message, message
    return message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@problemName x\n@classLabel true a b\n1,2:a\n", "before the @data"),
        ("@problemName x\n@classLabel true a b\n", "no @data"),
        ("@problemName x\n@classLabel true\n@data\n1:a\n", "must list the class labels"),
        ("@problemName x\n@classLabel maybe a\n@data\n1:a\n", "needs true or false"),
        ("@problemName x\n@dimensions two\n@classLabel true a b\n@data\n1:a\n", "positive integer"),
        ("@problemName x\n@data\n1,2:a\n", "declares no labels"),
        ("@problemName x\n@timeStamps true\n@classLabel true a\n@data\n", "timestamped"),
    ],
)
def test_broken_ts_header(tmp_path: Path, text: str, expected: str) -> None:
    p = tmp_path / "h.ts"
    p.write_text(text)
    assert expected in error_of(p)


@pytest.mark.parametrize(
    ("rows", "line", "expected"),
    [
        ("1,2:3,4:a\n1,2:a\n", 6, "has 1 channels but @dimensions says 2"),
        ("1,2:3,4:a\n1,x:3,4:b\n", 6, "not a number"),
        ("1,2:3,4:a\n1,2:3:b\n", 6, "different lengths"),
        ("1,2:3,4:a\n1,2:3,4:c\n", 6, "not declared"),
        ("1,2:3,4:a\n1,?:3,4:b\n", 6, "missing value"),
        ("1,2:3,4:a\n1,inf:3,4:b\n", 6, "infinite"),
        ("1,2:3,4:a\n1,2:3,4:a\n", None, "at least 2 classes"),
    ],
)
def test_malformed_ts_case_names_its_line(tmp_path: Path, rows: str, line: int | None, expected: str) -> None:
    p = tmp_path / "c.ts"
    p.write_text(HEAD + rows)
    message = error_of(p)
    assert expected in message, message
    if line is not None:
        assert f"c.ts:{line}:" in message, message


def test_npz_problems(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(4, 5, 2))
    y = np.array([0, 1, 0, 1])
    cases = {
        "empty": ({"x": np.zeros((0, 5, 2)), "y": np.zeros(0)}, "empty"),
        "nan": ({"x": np.where(np.arange(5)[None, :, None] == 2, np.nan, x), "y": y}, "missing value"),
        "inf": ({"x": np.where(np.arange(5)[None, :, None] == 2, np.inf, x), "y": y}, "infinite"),
        "nolabels": ({"x": x}, "no label array"),
        "oneclass": ({"x": x, "y": np.zeros(4)}, "at least 2 classes"),
        "count": ({"x": x, "y": np.array([0, 1, 0])}, "3 labels for 4 sequences"),
        "lengths": ({"x": x, "y": y, "lengths": np.array([5, 9, 1, 1])}, "'lengths' goes up to 9"),
        "nanlabel": ({"x": x, "y": np.array([0.0, np.nan, 1.0, 0.0])}, "label of sequence 1 is missing"),
    }
    for name, (arrays, expected) in cases.items():
        p = tmp_path / f"{name}.npz"
        np.savez(p, **arrays)
        assert expected in error_of(p), name


def test_npz_object_arrays_need_opt_in(tmp_path: Path) -> None:
    seqs, labels, _ = small_dataset(n=4)
    x = np.empty(4, dtype=object)
    x[:] = seqs
    ragged = np.empty(2, dtype=object)
    ragged[:] = [np.zeros((3, 2)), np.zeros((3, 3))]
    np.savez(tmp_path / "o.npz", x=x, y=np.array(labels))
    np.savez(tmp_path / "r.npz", x=ragged, y=np.array(["a", "b"]))
    assert "allow_pickle=true" in error_of(tmp_path / "o.npz")
    assert "every sequence needs the same channels" in error_of(tmp_path / "r.npz", {"allow_pickle": True})


def test_table_problems(tmp_path: Path) -> None:
    seqs, labels, _ = small_dataset(n=6)
    frame = long_frame(seqs, labels)
    frame.drop(columns="label").to_csv(tmp_path / "nolabel.csv", index=False)
    assert "no 'label' column" in error_of(tmp_path / "nolabel.csv")
    assert "data.options.label_col" in error_of(tmp_path / "nolabel.csv")
    frame.drop(columns="id").to_csv(tmp_path / "noid.csv", index=False)
    assert "no 'id' column" in error_of(tmp_path / "noid.csv")
    varying = frame.copy()
    varying.loc[1, "label"] = "z"
    varying.to_csv(tmp_path / "vary.csv", index=False)
    assert "changes within sequence id 'seq0'" in error_of(tmp_path / "vary.csv")
    missing = frame.copy()
    missing.loc[missing["id"] == "seq2", "label"] = None
    missing.to_csv(tmp_path / "miss.csv", index=False)
    assert "label of sequence id 'seq2' is missing" in error_of(tmp_path / "miss.csv")
    text = frame.copy()
    text["f1"] = text["f1"].astype(str)
    text.loc[3, "f1"] = "oops"
    text.to_csv(tmp_path / "text.csv", index=False)
    assert "feature column 'f1' is not numeric" in error_of(tmp_path / "text.csv")
    (tmp_path / "empty.csv").write_text("")
    assert "empty" in error_of(tmp_path / "empty.csv")
    write_csv(tmp_path / "ok.csv", seqs, labels)
    assert "(did you mean 'label_col'?)" in error_of(tmp_path / "ok.csv", {"labl_col": "x"})


def test_path_problems(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file or folder"):
        load_file(tmp_path / "nope.ts")
    (tmp_path / "d.xlsx").write_text("")
    with pytest.raises(UserError, match="unknown file type '.xlsx'"):
        load_file(tmp_path / "d.xlsx")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "X_TRAIN.ts").write_text(ts_text(*small_dataset(n=4)[:2]))
    with pytest.raises(UserError, match="NAME_TRAIN.ts and NAME_TEST.ts"):
        load_file(tmp_path / "folder")


def test_config_level_problems(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown dataset 'japanese_vowel' \\(did you mean 'japanese_vowels'\\?\\)"):
        load_dataset(DataConfig(name="japanese_vowel"))
    with pytest.raises(UserError, match="data.options.clases: not an option of dataset 'synthetic_gestures'"):
        load_dataset(DataConfig(name="synthetic_gestures", options={"clases": 3}))
    with pytest.raises(UserError, match="data.classes=12: the data has only 9 classes"):
        load_dataset(DataConfig(classes=12))
    seqs, labels, _ = small_dataset(n=7)
    labels = ["a", "a", "a", "b", "b", "b", "c"]  # 'c' has a single sequence
    (tmp_path / "rare.ts").write_text(ts_text(seqs, labels))
    splits = prepare(DataConfig(path=str(tmp_path / "rare.ts"), classes=2), seed=0)  # keeps the frequent classes
    assert splits.meta.class_names == ("a", "b")


def test_a_class_with_one_sequence_stays_in_training(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    seqs, _, _ = small_dataset(n=12)
    labels = ["a"] * 6 + ["b"] * 5 + ["c"]  # 'c' has a single sequence: it cannot be on both sides
    (tmp_path / "rare_TRAIN.ts").write_text(ts_text(seqs, labels))
    (tmp_path / "rare_TEST.ts").write_text(ts_text(seqs[:4], ["a", "b", "c", "a"]))
    with caplog.at_level("WARNING"):
        splits = prepare(DataConfig(path=str(tmp_path)), seed=0)
    c = splits.meta.class_names.index("c")
    assert int((splits.train.y == c).sum()) == 1 and int((splits.val.y == c).sum()) == 0
    assert {0, 1} <= set(splits.val.y.tolist())  # the other classes are still stratified
    assert len(splits.train) + len(splits.val) == 12
    assert "class 'c' has 1 sequence in the train split: it stays in training" in caplog.text
    (tmp_path / "single.ts").write_text(ts_text(seqs[:2], ["a", "b"]))
    with pytest.raises(UserError, match="every class has a single sequence"):
        prepare(DataConfig(path=str(tmp_path / "single.ts")), seed=0)


def test_a_train_split_of_singletons_is_its_own_validation(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """UCR's Fungi: one training series per class.  Nothing can be held out for validation, so
    validation is the training split itself, with a warning; the official test split is untouched."""
    seqs, _, _ = small_dataset(n=6)
    names = ["a", "b", "c", "d"]
    (tmp_path / "fungi_TRAIN.ts").write_text(ts_text(seqs[:4], names))
    (tmp_path / "fungi_TEST.ts").write_text(ts_text(seqs[2:], ["c", "d", "a", "b"]))
    with caplog.at_level("WARNING"):
        splits = prepare(DataConfig(path=str(tmp_path)), seed=0)
    assert len(splits.train) == len(splits.val) == 4 and len(splits.test) == 4
    assert torch.equal(splits.train.x, splits.val.x) and torch.equal(splits.train.y, splits.val.y)
    assert splits.val.x.data_ptr() != splits.train.x.data_ptr()  # a copy: nothing downstream aliases the two
    assert "every class has a single sequence in the train split" in caplog.text
    assert "validation scores are on the training data" in caplog.text


def test_cli_exit_code_2_on_bad_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tunelab.cli import main

    bad = tmp_path / "bad.ts"
    bad.write_text(HEAD + "1,2:3,4:a\n1,2:a\n")
    monkeypatch.setattr(
        sys, "argv", ["tunelab", "train", "--data-path", str(bad), "--save-dir", str(tmp_path / "runs"), "--quiet"]
    )
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "bad.ts:6:" in err and "Traceback" not in err
