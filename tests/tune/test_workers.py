"""Worker processes on one storage, and trials whose worker died (heartbeats)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import optuna
import pytest

from tests.tune.conftest import options, tiny_study
from tunelab.results.attrs import TRIAL
from tunelab.tune import tune

ROOT = Path(__file__).resolve().parents[2]


def test_two_worker_processes_share_the_trial_budget(tmp_path: Path, splits: Any) -> None:
    cfg = tiny_study(sampler="random", budget={"n_trials": 4})
    result = tune(cfg, options(tmp_path, workers=2), data=splits)
    study = optuna.load_study(study_name=result.study_name, storage=f"sqlite:///{tmp_path / 'tunelab.db'}")
    trials = study.trials
    assert [t.number for t in trials] == [0, 1, 2, 3] and all(t.state.name == "COMPLETE" for t in trials)
    lrs = [t.params["train.lr"] for t in trials]
    assert len(set(lrs)) == 4  # the workers' samplers are seeded apart: no duplicated proposals
    dirs = sorted(p.name.split("-")[0] for p in (result.study_dir / "trials").iterdir())
    assert dirs == ["0", "1", "2", "3"]
    assert result.states == {"COMPLETE": 4} and (result.study_dir / "best_model.pt").is_file()


_HANG = """
import sys, time
sys.path[:0] = [{root!r}, {src!r}]
import optuna, torch
torch.set_num_threads(1)
from tests.helpers import tiny_splits
from tests.tune.conftest import options, tiny_study
from tunelab.train import BaseCallback
from tunelab.tune import tune

class Hang(BaseCallback):
    def on_epoch_end(self, ctx, report):
        time.sleep(1000)  # killed here, mid-trial

cfg = tiny_study(storage={storage!r}, heartbeat_interval=1, grace_period=2, budget={{"n_trials": 1}})
tune(cfg, options(__import__("pathlib").Path({save!r}), study_name="hb"), data=tiny_splits(n=48, t=8), callbacks=[Hang()])
"""


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("journal", marks=pytest.mark.slow)])
def test_a_killed_workers_trial_is_failed_and_retried(tmp_path: Path, splits: Any, kind: str) -> None:
    storage = f"sqlite:///{tmp_path / 'hb.db'}" if kind == "sqlite" else f"journal://{tmp_path / 'hb.log'}"
    script = textwrap.dedent(_HANG).format(root=str(ROOT), src=str(ROOT / "src"), storage=storage, save=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        cfg = tiny_study(storage=storage, heartbeat_interval=1, grace_period=2, budget={"n_trials": 1})
        from tunelab.tune.study import make_storage

        store = make_storage(storage, heartbeat_interval=1, grace_period=2, max_retry=2)
        deadline = time.time() + 120
        running = None
        while time.time() < deadline and running is None:
            time.sleep(0.5)
            try:
                study = optuna.load_study(study_name="hb", storage=store)
            except KeyError:
                continue
            running = next(
                (t for t in study.trials if t.state.name == "RUNNING" and TRIAL.RUN_DIR in t.user_attrs), None
            )
        assert running is not None, "the worker never started its trial"
        time.sleep(1.5)  # inside its first epoch's callback
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(3)  # longer than the grace period: the heartbeat is stale
    result = tune(cfg, options(tmp_path, study_name="hb", resume=True), data=splits)
    study = optuna.load_study(study_name="hb", storage=store)
    lost, retry = study.trials
    assert lost.state.name == "FAIL" and retry.state.name == "COMPLETE"
    assert retry.params == lost.params and retry.system_attrs["failed_trial"] == lost.number
    rows = (result.study_dir / "trials.csv").read_text()
    assert "worker lost (no heartbeat); retried as trial 1" in rows
