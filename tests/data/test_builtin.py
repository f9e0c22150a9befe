"""Built-in datasets: JapaneseVowels shipped with its official split; seeded synthetic generators."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from tunelab.config import DataConfig
from tunelab.data import load_dataset, prepare
from tunelab.data.builtin.japanese_vowels import FILE
from tunelab.registry import DATASETS


def test_japanese_vowels_facts() -> None:
    d = load_dataset(DataConfig(name="japanese_vowels"))
    assert len(d) == 640 and d.x.shape == (640, 29, 12)
    assert d.meta.channels == 12 and d.meta.n_classes == 9 and d.meta.task == "classification"
    assert d.meta.class_names == tuple(str(k) for k in range(1, 10))
    assert int(d.lengths.min()) == 7 and int(d.lengths.max()) == 29
    assert d.split is not None and int((d.split == 0).sum()) == 270 and int((d.split == 1).sum()) == 370
    assert torch.bincount(d.y[d.split == 0]).tolist() == [30] * 9  # 30 utterances per speaker in train
    assert float(d.x[~d.mask()].abs().sum()) == 0.0
    assert abs(float(d.x[0, 0, 0]) - 1.860936) < 1e-6  # the first value of the UEA TRAIN file
    assert FILE.stat().st_size < 1_000_000 and FILE.with_name("README.md").is_file()


def test_builtin_names_registered() -> None:
    assert {"japanese_vowels", "synthetic_gestures", "synthetic_denoise", "synthetic_regression"} <= set(
        DATASETS.names()
    )


@pytest.mark.parametrize(
    ("name", "options", "task"),
    [
        ("synthetic_gestures", {"n": 50, "channels": 4, "classes": 5, "min_len": 8, "max_len": 16}, "classification"),
        ("synthetic_denoise", {"n": 20, "channels": 2, "min_len": 30, "max_len": 40, "kind": "pink"}, "seq2seq"),
        ("synthetic_regression", {"n": 30, "channels": 3}, "regression"),
    ],
)
def test_synthetic_options_and_seed(name: str, options: dict, task: str) -> None:
    a = load_dataset(DataConfig(name=name, options=options))
    b = load_dataset(DataConfig(name=name, options=options))
    c = load_dataset(DataConfig(name=name, options={**options, "seed": 1}))
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and not torch.equal(a.lengths, c.lengths)
    assert len(a) == options["n"] and a.meta.task == task
    assert a.meta.channels == options["channels"] and a.x.shape[2] == options["channels"]
    lo, hi = options.get("min_len", 20), options.get("max_len", 60)
    assert lo <= int(a.lengths.min()) and int(a.lengths.max()) <= hi and a.x.shape[1] == int(a.lengths.max())
    assert float(a.x[~a.mask()].abs().sum()) == 0.0
    if task == "classification":
        assert a.meta.n_classes == options["classes"] and set(a.y.tolist()) == set(range(options["classes"]))


def test_synthetic_gestures_is_learnable() -> None:
    """A nearest-centroid classifier on time-resampled sequences already beats chance by far."""
    s = prepare(DataConfig(name="synthetic_gestures", options={"n": 300, "classes": 5}), seed=0)

    def feats(d):
        out = []
        for i, n in enumerate(d.lengths.tolist()):
            seq = d.x[i, :n].T[None]  # [1, C, n]
            out.append(torch.nn.functional.interpolate(seq, size=16, mode="linear", align_corners=True).flatten())
        return torch.stack(out)

    ftr, fte = feats(s.train), feats(s.test)
    centroids = torch.stack([ftr[s.train.y == k].mean(0) for k in range(5)])
    pred = torch.cdist(fte, centroids).argmin(1)
    assert float((pred == s.test.y).float().mean()) > 0.6


def test_datasets_cli_lists_shapes(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from tunelab.cli import main

    monkeypatch.setattr(sys, "argv", ["tunelab", "datasets", "--json"])
    try:
        main()
    except SystemExit as exc:  # only a failure exits
        assert exc.code in (0, None)
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    jv = rows["japanese_vowels"]
    assert (jv["n"], jv["channels"], jv["min_len"], jv["max_len"], jv["classes"], jv["task"], jv["split"]) == (
        640,
        12,
        7,
        29,
        9,
        "classification",
        "270/370",
    )
    assert rows["synthetic_denoise"]["task"] == "seq2seq"
