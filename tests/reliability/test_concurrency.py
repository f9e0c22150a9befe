"""Four worker processes on one study, on the default SQLite storage and on PostgreSQL: every trial
finishes once, numbers are unique and contiguous, no lock errors, every trial in the study dir."""

from __future__ import annotations

import csv
import os
import subprocess
import uuid
from pathlib import Path

import optuna
import pytest

from tests.reliability.common import FINISHED, check_artifacts, cli_cmd, env, run_cli, study_file, trials_of
from tests.reliability.conftest import FIGURES
from tunelab.tune import TuneOptions, load_study_config, tune
from tunelab.tune.study import make_storage

PG_URL = os.environ.get("TUNELAB_TEST_POSTGRES_URL")
LOCK_ERRORS = ("database is locked", "OperationalError", "deadlock", "Traceback", "could not serialize")


def _accounted(trials: list[optuna.trial.FrozenTrial], n: int, study_dir: Path) -> None:
    assert sorted(t.number for t in trials) == list(range(n)), [t.number for t in trials]
    states = [t.state.name for t in trials]
    assert all(s in FINISHED for s in states), states
    assert len({t.user_attrs["run_dir"] for t in trials}) == n  # each trial its own directory
    for t in trials:
        assert (study_dir / t.user_attrs["run_dir"] / "config.json").is_file()
    rows = list(csv.DictReader((study_dir / "trials.csv").open()))
    assert sorted(int(r["number"]) for r in rows) == list(range(n))
    check_artifacts(study_dir)
    FIGURES["worker_trials"] += n


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_four_worker_processes_share_one_study(
    tmp_path: Path, backend: str, long_run: bool, capfd: pytest.CaptureFixture[str]
) -> None:
    if backend == "postgresql" and not PG_URL:
        pytest.skip("TUNELAB_TEST_POSTGRES_URL is not set (.ci/run sets it to the CI PostgreSQL)")
    n = 40 if long_run else 12
    name = f"rel-{backend}-{uuid.uuid4().hex[:8]}"  # unique on a shared server
    storage = PG_URL if backend == "postgresql" else None  # None: sqlite:///<save-dir>/tunelab.db
    cfg = load_study_config(study_file(tmp_path / "study.yaml", storage=storage, budget={"n_trials": n}))
    try:
        result = tune(cfg, TuneOptions(save_dir=tmp_path / "runs", study_name=name, workers=4, report=False))
        store = make_storage(storage or f"sqlite:///{tmp_path / 'runs' / 'tunelab.db'}")
        trials = optuna.load_study(study_name=name, storage=store).get_trials(deepcopy=False)
        _accounted(trials, n, result.study_dir)
        assert sum(result.states.values()) == n
    finally:
        if backend == "postgresql":
            optuna.delete_study(study_name=name, storage=make_storage(PG_URL))  # type: ignore[arg-type]
    out = capfd.readouterr()
    assert not [e for e in LOCK_ERRORS if e in out.out + out.err], (out.out + out.err)[-3000:]


def test_four_independent_cli_processes_join_one_sqlite_study(tmp_path: Path, long_run: bool) -> None:
    """``tunelab tune --resume --study-name`` from four shells at once: the way extra machines join."""
    per, name = (10 if long_run else 3), "joined"
    cfg = study_file(tmp_path / "study.yaml")
    runs = tmp_path / "runs"
    args = ["tune", "-c", str(cfg), "--study-name", name, "--save-dir", str(runs), "--no-report"]
    first = run_cli(*args, "--trials", "1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    procs = [
        subprocess.Popen(
            cli_cmd(*args, "--resume", "--trials", str(per)),
            cwd=tmp_path,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out[-3000:]
        assert not [e for e in LOCK_ERRORS if e in out], out[-3000:]
    trials = trials_of(runs / "tunelab.db", name)
    _accounted(trials, 1 + 4 * per, runs / name)
