"""Experiment-set files: short and long forms, seeds, and one-line errors naming the file and key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import tunelab  # noqa: F401
from tunelab.errors import UserError
from tunelab.experiments.spec import flatten_overrides, load_experiment_set


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "set.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_forms_seeds_and_family_switches(tmp_path) -> None:
    (tmp_path / "base.yaml").write_text("model: {name: gru, hidden_dim: 32}\nseed: 10\n")
    path = _write(
        tmp_path,
        """
        name: s
        base: base.yaml
        overrides: [train.max_epochs=2]
        repeats: 2
        experiments:
          a: {}
          b: {model: {hidden_dim: 64}}
          c: {model.hidden_dim: 16, model.name: conv_gru}
          d: {overrides: ["model.dropout=0.5"], repeats: 3, description: three seeds}
    """,
    )
    spec, jobs = load_experiment_set(path, ["train.batch_size=8"])
    assert spec.baseline_name == "a"
    by = {(j.experiment, j.seed): j.config for j in jobs}
    assert sorted(s for e, s in by if e == "a") == [10, 11] and sorted(s for e, s in by if e == "d") == [10, 11, 12]
    assert by[("b", 10)].model.hidden_dim == 64 and by[("a", 10)].model.hidden_dim == 32
    assert by[("c", 11)].model.name == "conv_gru" and by[("c", 11)].model.hidden_dim == 16  # name applied first
    assert (
        by[("d", 12)].model.dropout == 0.5
        and by[("a", 11)].train.max_epochs == 2
        and by[("a", 11)].train.batch_size == 8
    )
    keys = {j.key for j in jobs}
    assert len(keys) == len(jobs)  # every config differs (seed or overrides)


def test_flatten_overrides() -> None:
    assert flatten_overrides({"model": {"hidden_dim": 8, "name": "gru"}, "train.lr": 0.1}) == {
        "model.hidden_dim": 8,
        "model.name": "gru",
        "train.lr": 0.1,
    }
    assert flatten_overrides(["train.lr=3e-4", "model.bidirectional=true"]) == {
        "train.lr": 3e-4,
        "model.bidirectional": True,
    }


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("experiments: {a: {}}\nbaseline: b\nname: s", "baseline 'b' is not an experiment"),
        ("experiments: {a: {}}\nname: s\nrepeat: 3", "unknown key 'repeat'.*did you mean 'repeats'"),
        ("experiments: {a: {model.hidden_dimm: 3}}\nname: s", "experiment 'a'.*model.hidden_dimm"),
        ("name: s", "experiments"),
        ("experiments: {a: {}}\nname: s\nmetrics: [val_acc2]", "unknown metric 'val_acc2'.*did you mean 'val_acc'"),
    ],
)
def test_errors_name_the_file_and_key(tmp_path, body: str, match: str) -> None:
    with pytest.raises(UserError, match=match) as info:
        load_experiment_set(_write(tmp_path, body))
    assert "set.yaml" in str(info.value)
