"""`tunelab tune` and `tunelab space` on the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.tune.conftest import TINY_CLI
from tunelab.cli import app, main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TINY = TINY_CLI


def test_tune_prints_a_line_per_trial_a_progress_bar_and_the_best_trial(tmp_path: Path) -> None:
    args = [
        "tune",
        "--model",
        "gru",
        "--trials",
        "2",
        "--epochs",
        "1",
        *TINY,
        "--no-report",
        "--save-dir",
        str(tmp_path),
        "--study-name",
        "demo",
    ]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    text = out.output
    assert "study demo · 2 trials · sampler tpe · pruner median" in text
    assert (
        "Trial 0 finished with value: " in text and "Trial 1 finished with value: " in text and "Best is trial" in text
    )
    assert "2/2" in text and "best: " in text
    assert "Best trial: " in text and "Value (val_f1): " in text and "test_acc=" in text
    assert "best model:" in text and str(tmp_path / "demo" / "best_model.pt") in text
    config = json.loads((tmp_path / "demo" / "best_config.json").read_text())
    assert config["model"]["hidden_dim"] == 8 and config["train"]["max_epochs"] == 1  # flags fix, and are not searched
    assert "model.hidden_dim" not in json.loads((tmp_path / "demo" / "best_params.json").read_text())


def test_space_show_reports_grid_sizes() -> None:
    out = CliRunner().invoke(app, ["space", "--show", "-c", str(EXAMPLES / "seed002_unet_grid.yaml")])
    assert out.exit_code == 0, out.output
    assert "grid 'quick': 8 combinations" in out.output and "grid 'full': 864 combinations" in out.output
    shown = CliRunner().invoke(
        app, ["space", "-c", str(EXAMPLES / "seed002_unet_grid.yaml"), "--grid", "full", "--json"]
    )
    data = json.loads(shown.output)
    assert data["size"] == 864 and data["grids"] == {"quick": 8, "full": 864}
    assert {p["key"] for p in data["params"]} >= {"train.lr", "train.plateau_factor", "train.early_stopping.patience"}


def test_space_show_for_a_seed000_model_type() -> None:
    out = CliRunner().invoke(
        app, ["space", "-c", str(EXAMPLES / "seed000_asl.yaml"), "--model-type", "transformer", "--json"]
    )
    keys = {p["key"] for p in json.loads(out.output)["params"]}
    assert (
        {"model.d_model", "model.num_heads", "train.lr"} <= keys
        and "model.channels" not in keys
        and "model.name" not in keys
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--sampler", "tpee"], "unknown sampler 'tpee' (did you mean 'tpe'?)"),
        (["--phase", "phase9", "-c", str(EXAMPLES / "seed001_phases.yaml")], "unknown phase 'phase9'"),
        (["--model", "grux"], "unknown model family 'grux' (did you mean 'gru'?)"),
        (["--resume", "--study-name", "missing"], "--resume: no study 'missing'"),
        (["--objectives", "val_mse"], "objective 'val_mse' does not exist for a classification task"),
    ],
)
def test_mistakes_are_one_line_with_exit_code_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    monkeypatch.setattr(sys, "argv", ["tunelab", "tune", *args, *TINY[:-3], "--save-dir", str(tmp_path), "--no-report"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert needle in " ".join(err.split()) and "Traceback" not in err
