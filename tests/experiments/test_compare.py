"""`tunelab compare`: runs, study bests and single trials side by side; the MiniRocket reference row."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tunelab  # noqa: F401
from tunelab.cli import app
from tunelab.config import load_config
from tunelab.errors import UserError
from tunelab.experiments import compare_sources, run_experiment_set
from tunelab.train import fit

DATA = ["data.name=synthetic_gestures", "data.options={n: 60, classes: 3, min_len: 6, max_len: 12}"]
FAST = ["model.hidden_dim=4", "model.num_layers=1", "train.max_epochs=2", "train.batch_size=32", "device=cpu"]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A finished run directory and a finished study directory (an experiment set of 2 trials)."""
    root = tmp_path_factory.mktemp("cmp")
    run = root / "runs" / "original"
    fit(load_config(None, [*DATA, *FAST]), run_dir=run)
    (root / "set.yaml").write_text(
        textwrap.dedent("""
        name: study
        base:
          data: {name: synthetic_gestures, options: {n: 60, classes: 3, min_len: 6, max_len: 12}}
          model: {name: gru, hidden_dim: 4, num_layers: 1}
          train: {max_epochs: 2, batch_size: 32}
          device: cpu
        metrics: [val_acc]
        experiments: {a: {}, b: {model.hidden_dim: 8}}
    """)
    )
    result = run_experiment_set(root / "set.yaml", save_dir=root / "runs")
    return run, result.study_dir


def test_compare_a_run_with_a_study_best_and_a_trial(dirs) -> None:
    run, study = dirs
    comp, entries, hint = compare_sources([str(run), str(study), f"{study}#0"])
    assert hint is None
    assert [r.name for r in comp.rows] == ["original", "study (best)", "study#0"]
    assert comp.row("original").baseline and "test_acc" in comp.metrics and "seconds_per_epoch" in comp.metrics
    best = comp.row("study (best)").stats["test_acc"]
    base = comp.row("original").stats["test_acc"].summary.mean
    assert best.change is not None and best.change.delta == pytest.approx(best.summary.mean - base)
    assert (
        entries[1]
        .samples[0]
        .source.endswith("#" + str(json.loads((study / "study_results.json").read_text())["best_trial"]["number"]))
    )
    assert entries[2].samples[0].n_params == 4 * 3 * (3 + 4) + 3 * 4 * 2 + 4 * 3 + 3  # GRU(3→4) + head(4→3)


def test_compare_reads_the_storage_when_files_are_missing(dirs, tmp_path) -> None:
    import shutil

    run, study = dirs
    copy = tmp_path / "study"
    shutil.copytree(study, copy)
    (copy / "study_results.json").unlink()
    comp, _, _ = compare_sources([f"{copy}#1", str(run)])
    assert comp.row("study#1").n == 1 and comp.row("study#1").stats["val_acc"].summary.n == 1


def test_bad_sources_are_user_errors(dirs, tmp_path) -> None:
    run, study = dirs
    with pytest.raises(UserError, match="not found"):
        compare_sources([str(tmp_path / "nope")])
    with pytest.raises(UserError, match="trial number"):
        compare_sources([f"{study}#x"])
    with pytest.raises(UserError, match="neither a run"):
        compare_sources([str(tmp_path)])


def test_reference_row(dirs, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "aeon", None)  # MiniRocket needs torch only
    run, study = dirs
    result = CliRunner().invoke(app, ["compare", str(run), str(study), "--reference", "--metric", "test_acc"])
    assert result.exit_code == 0, result.output
    assert "MiniRocket (reference)" in result.output and "test_acc" in result.output
    comp, entries, hint = compare_sources([str(run)], reference=True)
    ref = comp.row("MiniRocket (reference)")
    assert ref.reference and 0 <= ref.stats["test_acc"].summary.mean <= 1 and hint is None
    assert entries[-1].samples[0].n_params > 0


def test_cli_writes_the_table(dirs, tmp_path) -> None:
    run, study = dirs
    out = tmp_path / "cmp.md"
    result = CliRunner().invoke(app, ["compare", str(study), str(run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "study (best) (baseline)" in out.read_text() and "original" in out.read_text()
    js = CliRunner().invoke(app, ["compare", str(run), str(run), "--json"])
    data = json.loads(js.output)
    assert [e["name"] for e in data["entries"]] == ["original", "original'"]


def test_compare_warns_in_one_line_when_the_runs_used_different_datasets(dirs, tmp_path) -> None:
    from tunelab.experiments.compare import dataset_note

    run, study = dirs
    _, same, _ = compare_sources([str(run), str(study)])
    assert dataset_note(same) is None  # one dataset: nothing to say
    other = tmp_path / "other"
    fit(load_config(None, ["data.name=synthetic_gestures", "data.options={n: 40, classes: 3, min_len: 6, max_len: 12}", *FAST]), run_dir=other)  # fmt: skip
    _, mixed, _ = compare_sources([str(run), str(other)])
    note = dataset_note(mixed)
    assert note is not None and "different datasets" in note and "n=40" in note and "n=60" in note
    result = CliRunner().invoke(app, ["compare", str(run), str(other)])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.output.splitlines() if "different datasets" in ln]
    assert len(lines) == 1 and lines[0].startswith("warning:")
