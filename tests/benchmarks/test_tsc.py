"""benchmarks/tsc.py without running a study: the table's maths, the .tsv -> .ts staging, the
chance rate and the published-results reader."""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tunelab.data.formats.ts import read_ts

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _module(name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


table = _module("tsc_table")
data = _module("tsc_data")

ROWS = [  # a: ours; b, c: references
    {"dataset": "d1", "a": 0.90, "b": 0.80, "c": 0.90},
    {"dataset": "d2", "a": 0.70, "b": 0.75, "c": 0.60},
    {"dataset": "d3", "a": 0.50, "b": 0.50, "c": 0.50},
    {"dataset": "d4", "a": 0.95, "b": 0.99},  # no c: counts for a vs b only
    {"dataset": "d5", "b": 0.9, "c": 0.9},  # no result of ours
]


def test_ranks_share_ties():
    assert table.ranks([0.9, 0.8, 0.8, 0.7]) == [1.0, 2.5, 2.5, 4.0]
    assert table.ranks([0.5, 0.5, 0.5]) == [2.0, 2.0, 2.0]


def test_wins_ties_losses_count_only_rows_with_both():
    assert table.wins_ties_losses(ROWS, "a", "b") == (1, 1, 2)  # d1 win; d3 tie; d2, d4 losses
    assert table.wins_ties_losses(ROWS, "a", "c") == (1, 2, 0)  # d2 win; d1, d3 ties


def test_ties_are_equal_to_four_decimals():
    rows = [{"dataset": "x", "a": 0.93333333, "b": 0.9333}, {"dataset": "y", "a": 0.9334, "b": 0.9333}]
    assert table.wins_ties_losses(rows, "a", "b") == (1, 1, 0)


def test_mean_ranks_and_means_over_complete_rows():
    ranks, n = table.mean_ranks(ROWS, ["a", "b", "c"])
    assert n == 3  # d1..d3
    # d1: a 1.5, b 3, c 1.5; d2: a 2, b 1, c 3; d3: all 2
    assert ranks == pytest.approx({"a": 5.5 / 3, "b": 2.0, "c": 6.5 / 3})
    assert sum(ranks.values()) == pytest.approx(6.0)  # 1 + 2 + 3 per dataset
    assert table.means(ROWS, ["a", "b"]) == pytest.approx({"a": 3.05 / 4, "b": 3.04 / 4})


def test_deficits_and_render():
    assert table.deficits(ROWS, "a", "b", 3.0) == [("d2", 5.0), ("d4", 4.0)]
    rows = [*ROWS, {"dataset": "d6", "a": 0.52, "b": 0.9, "chance": 0.5}]
    text = table.render(rows, ["a"], ["b", "c"], ["chance"])
    assert "| d5 | - | 0.900 | 0.900 | - |" in text
    assert "- a vs b: 1 wins / 1 ties / 3 losses" in text
    assert "- a more than 3 points below b: d2 (+5.0), d4 (+4.0), d6 (+38.0)" in text
    assert "at chance (<= the majority-class rate + 2 points): d6" in text
    assert "mean rank a 1.83, b 2.00, c 2.17" in text


def test_tsv_becomes_a_ts_that_tunelab_reads(tmp_path):
    tsv = "1\t0.5\t1.5\t2.5\n-1\t3.0\t4.0\tNaN\n1\t1\t2\t3\n"
    (tmp_path / "D_TRAIN.ts").write_text(data.tsv_to_ts(tsv, "D"))
    ts = read_ts(tmp_path / "D_TRAIN.ts")
    assert [str(v) for v in ts.labels] == ["1", "-1", "1"]
    assert [len(s) for s in ts.seqs] == [3, 2, 3]  # trailing NaN is padding: a shorter series
    np.testing.assert_allclose(np.asarray(ts.seqs[1]).ravel(), [3.0, 4.0])
    assert "@equalLength false" in data.tsv_to_ts(tsv, "D")


def test_stage_from_a_wheel_and_chance_rate(tmp_path):
    wheel = tmp_path / "w-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("pkg/data/D_TRAIN.tsv", "a\t1\t2\na\t2\t3\nb\t3\t4\n")
        zf.writestr("pkg/data/D_TEST.tsv", "a\t1\t2\nb\t2\t3\nb\t3\t4\nb\t0\t1\n")
    src = data.Source("w wheel", wheel)
    folder, origin = data.stage("D", [src], tmp_path / "out")
    assert origin == "w wheel"
    assert sorted(p.name for p in folder.glob("*.ts")) == ["D_TEST.ts", "D_TRAIN.ts"]
    assert data.chance_rate(folder) == 0.25  # the training majority 'a' is 1 of 4 test series
    assert data.stage("D", [], tmp_path / "out") == (folder, "w wheel")  # staged once, reused
    with pytest.raises(LookupError, match="E: in no source"):
        data.stage("E", [src], tmp_path / "out")


def test_read_resamples():
    text = "Resamples:,0,1,2\nGunPoint,0.9,1.0,0.95\n"
    assert data.read_resamples(text) == {"GunPoint": [0.9, 1.0, 0.95]}
    with pytest.raises(ValueError, match="not a tsml-eval results file"):
        data.read_resamples("dataset,acc\n")


def test_render_without_any_result_of_ours():
    rows = [{"dataset": "d1", "b": 0.9, "c": 0.8}, {"dataset": "d2", "b": 0.7, "c": 0.7}]
    text = table.render(rows, ["a"], ["b", "c"], [])
    assert text.splitlines()[0] == "| dataset | b | c |"  # an empty column is left out
    assert "- a: no result on any dataset (no trial finished)" in text
    assert "wins" not in text
    assert "mean rank b 1.25, c 1.75" in text
