"""W&B: the offline run files parse with wandb's own reader (`wandb leet inspect --json`)."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from tests.track.conftest import PRUNE_AT, STUDY, TrackedStudy

pytest.importorskip("wandb")


def _wandb(*args: str) -> str:
    cmd = [sys.executable, "-m", "wandb", "leet", "inspect", "--json", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout


def _inspect(run_dir: Path) -> dict[str, Any]:
    """A run's .wandb transaction log, read by wandb itself: its records, and its final state."""
    records = [json.loads(line) for line in _wandb(str(run_dir)).splitlines() if line.startswith("{")]
    state = json.loads(_wandb("--summary", str(run_dir)))
    run = next(r["run"] for r in records if r["type"] == "run")
    return {
        "name": state["name"],
        "group": run.get("run_group"),
        "config": state["config"],
        "history": [r["history"]["item"] for r in records if r["type"] == "history"],
        "summary": state["summary"],
        "state": state["state"],
        "exit_code": state["exit_code"],
        "dir": run_dir,
    }


@pytest.fixture(scope="module")
def runs(tracked: TrackedStudy) -> dict[str, dict[str, Any]]:
    dirs = sorted((tracked.save_dir / "wandb").glob("offline-run-*"))
    with ThreadPoolExecutor(4) as pool:  # each read is a wandb subprocess
        parsed = list(pool.map(_inspect, dirs))
    return {r["name"]: r for r in parsed}


def test_offline_runs_are_written_one_per_trial_grouped_by_study(runs: dict[str, dict[str, Any]]) -> None:
    assert set(runs) == {"trial-0", "trial-1", "trial-2", f"{STUDY}-summary", "gru-single"}
    for name in ("trial-0", "trial-1", "trial-2", f"{STUDY}-summary"):
        assert runs[name]["group"] == STUDY
        assert runs[name]["exit_code"] == 0 and runs[name]["state"] == "finished"
    assert not runs["gru-single"]["group"]


def test_trial_runs_carry_params_epochs_metrics_and_outcome(
    runs: dict[str, dict[str, Any]], tracked: TrackedStudy
) -> None:
    t0 = runs["trial-0"]
    assert t0["config"]["train.lr"] == pytest.approx(tracked.study.trials[0].params["train.lr"])
    assert t0["config"]["model.name"] == "gru" and t0["config"]["n_params"] > 0
    assert [h["_step"] for h in t0["history"]] == [1, 2, 3]
    assert all("val_loss" in h and "grad_norm" in h and any(k.startswith("lr/") for k in h) for h in t0["history"])
    s = t0["summary"]
    assert s["pruned"] is False and s["epochs_trained"] == 3
    assert s["test_acc"] == pytest.approx(tracked.study.trials[0].user_attrs["test_acc"])
    pruned = runs["trial-1"]["summary"]
    assert pruned["pruned"] is True and pruned["pruned_epoch"] == PRUNE_AT and pruned["epochs_trained"] == PRUNE_AT
    assert "test_acc" not in pruned


def test_study_summary_run_has_history_importance_and_parallel_coordinates(
    runs: dict[str, dict[str, Any]], tracked: TrackedStudy
) -> None:
    run = runs[f"{STUDY}-summary"]
    s = run["summary"]
    assert s["best_value"] == pytest.approx(tracked.study.best_value)
    assert s["best_trial"] == tracked.study.best_trial.number and s["n_pruned"] == 1
    for key, rows in (("optimization_history", 3), ("param_importances", 2), ("parallel_coordinates", 2)):
        assert s[key]["_type"] == "table-file" and s[key]["nrows"] == rows
        table = json.loads((run["dir"] / "files" / s[key]["path"]).read_text())
        assert len(table["data"]) == rows
    history = json.loads((run["dir"] / "files" / s["optimization_history"]["path"]).read_text())
    assert history["columns"][:4] == ["trial", "state", "value", "best_value"]
    assert [row[1] for row in history["data"]] == ["COMPLETE", "PRUNED", "COMPLETE"]
    assert (run["dir"] / "files" / "report.html").is_file() and (run["dir"] / "files" / "best_model.pt").is_file()
