from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers import run_cli

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "data.name=synthetic_gestures",
    "data.options.n=120",
    "model.hidden_dim=8",
    "model.num_layers=1",
    "train.max_epochs=2",
]


def tunelab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd)


def test_train_then_evaluate_reproduces_the_reported_metrics(tmp_path: Path) -> None:
    done = tunelab("train", *TINY, "--save-dir", str(tmp_path), "--name", "r1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "train_loss" in done.stdout and "test_acc=" in done.stdout
    run = tmp_path / "r1"
    summary = json.loads((run / "summary.json").read_text())
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == summary["epochs"] == 2
    again = tunelab("evaluate", str(run), "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    metrics = json.loads(again.stdout)
    for key in ("test_acc", "test_loss", "val_loss"):
        assert metrics[key] == pytest.approx(summary["metrics"][key], rel=1e-5)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["data.path=broken.ts"], "broken.ts"),
        (["train.lrr=1"], "did you mean 'lr'"),
        (["--config", "nope.yaml"], "nope.yaml"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path: Path, args: list[str], needle: str) -> None:
    (tmp_path / "broken.ts").write_text("@problemName x\n@classLabel true a b\n@data\n1,2,3:4,5\n")
    done = tunelab("train", *args, "--save-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert done.returncode == 2
    err = done.stderr.strip()
    assert needle in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_diverged_run_is_one_line_with_a_hint(tmp_path: Path) -> None:
    args = [*TINY, "train.lr=1e30", "train.clip_norm=null", "train.optimizer=sgd"]
    done = tunelab("train", *args, "--save-dir", str(tmp_path / "runs"), "-q", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    err = done.stderr.strip()
    assert "diverged at epoch" in err and "train.lr" in err and "clip" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--test-only"], "use 'tunelab evaluate RUN_DIR'"),
        (["--hidden-dim", "128"], "model.hidden_dim=128"),
        (["--early-stopping-patience=3"], "VALUE"),  # no such key: no hint, just click's message
    ],
)
def test_seed_style_flags_get_a_hint(tmp_path: Path, args: list[str], needle: str) -> None:
    done = tunelab("train", *args, cwd=tmp_path)
    err = done.stderr.strip()
    assert done.returncode == 2 and "Traceback" not in err and len(err.splitlines()) == 1
    assert (needle in err) == (needle != "VALUE") and "No such option" in err


def test_a_relative_data_path_is_saved_absolute_and_a_copied_run_evaluates(tmp_path: Path, monkeypatch) -> None:
    import shutil

    from tests.data.writers import small_dataset, write_npz_padded
    from tunelab.errors import UserError
    from tunelab.train.checkpoint import evaluate_checkpoint

    here = tmp_path / "machine1"
    here.mkdir()
    write_npz_padded(here / "asl_kp.npz", *small_dataset(n=30)[:2])
    tiny = ["model.hidden_dim=8", "model.num_layers=1", "train.max_epochs=1"]
    done = tunelab("train", *tiny, "--data-path", "asl_kp.npz", "--save-dir", "runs", "--name", "r", "-q", cwd=here)
    assert done.returncode == 0, done.stderr
    saved = json.loads((here / "runs" / "r" / "config.json").read_text())["data"]
    assert saved["path"] == str(here / "asl_kp.npz") and saved["name"] == "asl_kp"
    monkeypatch.chdir(tmp_path)  # another directory: the absolute path still finds the data
    first = evaluate_checkpoint(here / "runs" / "r", "cpu")
    # copied to another machine: the saved path is gone; the file in the working directory is used
    there = tmp_path / "machine2"
    shutil.copytree(here / "runs", there / "runs")
    shutil.move(here / "asl_kp.npz", there / "asl_kp.npz")
    monkeypatch.chdir(there)
    assert evaluate_checkpoint("runs/r", "cpu") == pytest.approx(first)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"asl_kp.npz .*no such file or folder here; .*--data-path"):
        evaluate_checkpoint(there / "runs" / "r", "cpu")
    assert evaluate_checkpoint(there / "runs" / "r", "cpu", data_path="machine2/asl_kp.npz") == pytest.approx(first)


def test_evaluate_refuses_a_foreign_checkpoint(tmp_path: Path) -> None:
    import torch

    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    done = tunelab("evaluate", str(tmp_path / "other.pt"), cwd=tmp_path)
    assert done.returncode == 2 and "not a tunelab checkpoint" in done.stderr


def test_train_picks_step_based_defaults_from_the_data_and_says_so(tmp_path: Path) -> None:
    args = ["data.name=synthetic_gestures", "data.options.n=60", "model.hidden_dim=8", "model.num_layers=1"]
    done = tunelab("train", *args, "--epochs", "2", "--save-dir", str(tmp_path), "--name", "r", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "data-aware defaults" in done.stdout and "batch 8" in done.stdout
    saved = json.loads((tmp_path / "r" / "config.json").read_text())["train"]
    assert saved["batch_size"] == 8 and saved["max_epochs"] == 2  # --epochs was set: it wins
    steps_per_epoch = -(-int(done.stdout.split("data-aware defaults (")[1].split()[0]) // 8)
    assert saved["early_stopping"]["patience"] * steps_per_epoch >= 400
