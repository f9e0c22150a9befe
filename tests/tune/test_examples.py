"""Every study file in examples/ validates, and smoke-runs through the CLI with tiny overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunelab.cli import app
from tunelab.config import load_study_config
from tunelab.tune.space import build_space

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
STUDIES = sorted(EXAMPLES.glob("*.yaml"))
QUICK = ["--trials", "1", "--epochs", "1", "--no-report", "--device", "cpu"]


def test_there_is_a_study_file_per_seed_workflow() -> None:
    names = {p.stem for p in STUDIES}
    assert {
        "quickstart",
        "seed000_asl",
        "seed001_phases",
        "seed002_unet_grid",
        "seed003_optim",
        "seed004_gestures",
    } <= names


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_every_example_validates_with_each_phase_and_grid(path: Path) -> None:
    cfg = load_study_config(path)
    assert build_space(cfg).params or cfg.grids
    for phase in cfg.phases:
        build_space(cfg, phase=phase)
    for grid in cfg.grids:
        assert build_space(cfg, grid=grid).size()


def _tune(tmp_path: Path, *args: str) -> str:
    out = CliRunner().invoke(app, ["tune", *args, *QUICK, "--save-dir", str(tmp_path)])
    assert out.exit_code == 0, out.output + repr(out.exception)
    assert "Best trial:" in out.output
    return out.output


def _best_config(tmp_path: Path) -> dict:
    (path,) = tmp_path.rglob("best_config.json")
    return json.loads(path.read_text())


def test_quickstart_smoke(tmp_path: Path) -> None:
    output = _tune(tmp_path, "-c", str(EXAMPLES / "quickstart.yaml"))
    assert "Trial 0 finished with value" in output and "test_acc=" in output
    assert _best_config(tmp_path)["data"]["name"] == "japanese_vowels"


def test_seed000_standard_bilstm_smoke(tmp_path: Path) -> None:
    _tune(
        tmp_path,
        "-c",
        str(EXAMPLES / "seed000_asl.yaml"),
        "--model-type",
        "bilstm",
        "--standard",
        "--classes",
        "4",
        "model.hidden_dim=16",
        "model.num_layers=1",
    )
    model = _best_config(tmp_path)["model"]
    assert model["name"] == "bilstm_enhanced" and not model["temporal_conv"] and not model["attention_pooling"]
    assert _best_config(tmp_path)["data"]["classes"] == 4


def test_seed000_auto_tune_all_compares_families(tmp_path: Path) -> None:
    output = _tune(
        tmp_path,
        "-c",
        str(EXAMPLES / "seed000_asl.yaml"),
        "--auto-tune-all",
        "--model",
        "bilstm_standard,temporalcnn",
        "--classes",
        "3",
        "train.batch_size=64",
    )
    assert "families compared on val_f1" in output and "bilstm_standard" in output and "temporalcnn" in output
    studies = sorted(p.parent.name for p in tmp_path.rglob("study.json"))
    assert studies == ["bilstm_standard", "temporalcnn"]


def test_seed001_phases_smoke(tmp_path: Path) -> None:
    seed = str(EXAMPLES / "seed001_phases.yaml")
    tiny = ["--classes", "3", "model.ff_dim=32"]
    _tune(tmp_path, "-c", seed, "--phase", "phase1_coarse", *tiny, "model.num_layers=1")
    out = _tune(tmp_path, "-c", seed, "--phase", "phase2_architecture", *tiny)
    assert "phase phase2_architecture: fixed from earlier phases: model.d_model=" in out and "train.lr=" in out
    (first,) = tmp_path.rglob("phase1_coarse/best_params.json")
    (second,) = tmp_path.rglob("phase2_architecture/best_params.json")
    assert first.parents[1] == second.parents[1]  # one study folder, a sub-folder per phase
    assert set(json.loads(first.read_text())) < set(json.loads(second.read_text()))


def test_seed002_quick_grid_smoke(tmp_path: Path) -> None:
    out = _tune(
        tmp_path,
        "-c",
        str(EXAMPLES / "seed002_unet_grid.yaml"),
        "--grid",
        "quick",
        "data.options.n=24",
        "data.options.min_len=32",
        "data.options.max_len=48",
        "model.depth=2",
        "model.base_channels=4",
    )
    assert "grid 'quick': 4 combinations" in out  # --epochs fixes train.max_epochs: 8 / 2
    assert "value (val_loss)" in out.lower()


def test_seed003_optimizer_space_smoke(tmp_path: Path) -> None:
    _tune(
        tmp_path,
        "-c",
        str(EXAMPLES / "seed003_optim.yaml"),
        "data.options.n=40",
        "model.hidden_dim=8",
        "model.conv_channels=8",
    )
    train = _best_config(tmp_path)["train"]
    assert train["optimizer"] == "adamw" and train["schedule"] == "cosine"


def test_seed004_gesture_families_smoke(tmp_path: Path) -> None:
    _tune(
        tmp_path,
        "-c",
        str(EXAMPLES / "seed004_gestures.yaml"),
        "data.options.n=60",
        "data.options.classes=4",
        "model.hidden_dim=8",
    )
    assert _best_config(tmp_path)["model"]["name"] in ("gru", "lstm", "conv_gru")
