"""`tunelab tune --tensorboard` end to end: the study and its trials reach the tracker."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunelab.cli import app


def test_tune_reports_each_trial_and_the_study(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    args = ["tune", "data.name=synthetic_gestures", "data.options.n=40", "model.hidden_dim=4", "--epochs", "2", "--trials", "2",
            "--save-dir", str(tmp_path), "--study-name", "tb-study", "--no-report", "--tensorboard"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    root = tmp_path / "tensorboard" / "tb-study"
    assert {p.name for p in root.iterdir()} == {"trial-0", "trial-1", "_study"}
    trial = EventAccumulator(str(root / "trial-0")).Reload()
    assert [e.step for e in trial.Scalars("val_loss")] == [1, 2]
    study = EventAccumulator(str(root / "_study")).Reload()
    assert [e.step for e in study.Scalars("study/best_value")] == [0, 1]
