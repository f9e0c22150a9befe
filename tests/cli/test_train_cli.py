from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "data.name=synthetic_gestures",
    "data.options.n=120",
    "model.hidden_dim=8",
    "model.num_layers=1",
    "train.max_epochs=2",
]


def tunelab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "tunelab", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


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
