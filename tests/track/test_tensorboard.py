"""TensorBoard: event files read back with tensorboard's own EventAccumulator."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.track.conftest import PRUNE_AT, STUDY, TrackedStudy

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def _load(run_dir: Path) -> EventAccumulator:
    assert run_dir.is_dir(), f"{run_dir} missing"
    return EventAccumulator(str(run_dir)).Reload()


def test_each_trial_has_per_epoch_scalars_under_the_study(tracked: TrackedStudy) -> None:
    root = tracked.save_dir / "tensorboard"
    assert {p.name for p in (root / STUDY).iterdir()} == {"trial-0", "trial-1", "trial-2", "_study"}
    acc = _load(root / STUDY / "trial-0")
    tags = set(acc.Tags()["scalars"])
    assert {"train_loss", "val_loss", "val_acc", "grad_norm", "clip_frac", "test_acc"} <= tags
    assert any(t.startswith("lr/") for t in tags)
    assert [e.step for e in acc.Scalars("val_loss")] == [1, 2, 3]
    assert acc.Scalars("test_acc")[0].value == pytest.approx(tracked.study.trials[0].user_attrs["test_acc"], rel=1e-6)
    pruned = _load(root / STUDY / "trial-1")
    assert [e.step for e in pruned.Scalars("val_loss")] == list(range(1, PRUNE_AT + 1))


def test_study_run_plots_value_and_best_value_over_trials(tracked: TrackedStudy) -> None:
    acc = _load(tracked.save_dir / "tensorboard" / STUDY / "_study")
    assert [e.step for e in acc.Scalars("study/value")] == [0, 2]
    best = acc.Scalars("study/best_value")
    assert [e.step for e in best] == [0, 1, 2] and best[-1].value == pytest.approx(tracked.study.best_value)


def test_a_single_train_run_writes_beside_the_studies(tracked: TrackedStudy) -> None:
    acc = _load(tracked.save_dir / "tensorboard" / "gru-single")
    assert [e.step for e in acc.Scalars("train_loss")] == [1, 2, 3]
