"""`tunelab tune`'s flags as the seed teams use them (issue 19): tracking flags, multi-objective
lines and pruning, the --auto-tune-all comparison, phased --best-params, grid/--epochs/--resume."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.tune.test_cli import TINY
from tunelab.cli import app, main


def _run(tmp_path: Path, *args: str) -> Any:
    out = CliRunner().invoke(app, ["tune", *args, "--save-dir", str(tmp_path)])
    return out


def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["tunelab", *args])
    with pytest.raises(SystemExit) as info:
        main()
    code = info.value.code
    return (code if isinstance(code, int) else 1), " ".join(capsys.readouterr().err.split())


# --------------------------------------------------------------------------- W&B (item 6)


def test_wandb_project_alone_turns_wandb_on_with_entity_group_and_a_sync_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tunelab.tune

    seen: dict[str, Any] = {}

    def fake_tune(cfg: Any, opts: Any, **kw: Any) -> None:
        seen["tracking"] = opts.tracking

    monkeypatch.setattr(tunelab.tune, "tune", fake_tune)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    args = ["--model", "gru", "--wandb-project", "asl", "--wandb-entity", "team", "--wandb-group", "g1", *TINY]
    out = _run(tmp_path, *args)
    assert out.exit_code == 0, out.output
    wb = seen["tracking"].wandb
    assert (wb.enabled, wb.project, wb.entity, wb.group, wb.mode) == (True, "asl", "team", "g1", "offline")
    assert f"wandb sync {tmp_path / 'wandb'}/offline-run-*" in out.output


# --------------------------------------------------------------------------- multi-objective (item 11)


def test_multi_objective_lines_show_the_values(tmp_path: Path) -> None:
    args = ["--model", "gru", "--objectives", "val_f1,n_params", "--pruner", "none", "--trials", "2"]
    out = _run(tmp_path, *args, "--epochs", "1", *TINY, "--no-report", "--study-name", "mo")
    assert out.exit_code == 0, out.output
    assert "Trial 0 finished with values: [val_f1=" in out.output and ", n_params=" in out.output


def test_a_pruner_with_several_objectives_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["tune", "--objectives", "val_f1,n_params", "--pruner", "median", *TINY, "--save-dir", str(tmp_path)]
    code, err = _main(monkeypatch, capsys, *args)
    assert code == 2 and "Optuna does not prune multi-objective trials; use --pruner none" in err
    assert not (tmp_path / "tunelab.db").exists()  # nothing half-written


# --------------------------------------------------------------------------- --auto-tune-all (item 4)


def test_auto_tune_all_writes_the_comparison_and_prints_whole_names(tmp_path: Path) -> None:
    args = ["--auto-tune-all", "--model", "gru,bilstm_standard", "--trials", "1", "--epochs", "1", *TINY]
    out = _run(tmp_path, *args, "--no-report", "--study-name", "cmp")
    assert out.exit_code == 0, out.output
    groups = [p for p in tmp_path.iterdir() if p.is_dir() and p.name.startswith("cmp")]
    assert len(groups) == 1
    rows = list(csv.DictReader((groups[0] / "comparison.csv").open()))
    assert {r["family"] for r in rows} == {"gru", "bilstm_standard"} and all(r["value"] for r in rows)
    assert "bilstm_standard" in out.output and "…" not in out.output  # not cut at 80 columns in a pipe
    assert f"comparison: {groups[0] / 'comparison.csv'}" in out.output
