"""SIGKILL at random moments (mid-trial, mid-write, between trials), resumed each time: no finished
trial is lost or changed, interrupted trials end FAIL (never RUNNING), no artifact is half-written."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.reliability.common import (
    FAULTS,
    FINISHED,
    check_artifacts,
    cli_cmd,
    env,
    snapshot,
    study_file,
    trials_of,
)
from tests.reliability.conftest import FIGURES

NAME = "killed"
MODES = ("trial", "write", "between")


def _count(pattern: str, root: Path) -> int:
    return sum(1 for _ in root.glob(pattern)) if root.is_dir() else 0


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*.tmp")] if root.is_dir() else []


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


def _wait(proc: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float = 180) -> bool:
    """Poll ``ready`` every 10 ms until it holds (True) or the process ends (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if ready():
            return True
        time.sleep(0.01)
    raise AssertionError("the study never reached the moment to kill it")


def test_sigkill_loop_loses_no_finished_trial(tmp_path: Path, long_run: bool) -> None:
    n_trials, n_kills = (40, 30) if long_run else (14, 6)  # default: each kill moment twice
    rng = random.Random(8)
    cfg = study_file(tmp_path / "study.yaml", budget={"n_trials": n_trials})
    runs = tmp_path / "runs"
    study_dir, db = runs / NAME, runs / "tunelab.db"
    known: dict[int, tuple[str, object, object]] = {}
    interrupted: set[int] = set()
    lost = kills = launches = 0
    modes_hit: dict[str, int] = {}
    temps: set[Path] = set()

    def launch(remaining: int, slow_writes: bool) -> subprocess.Popen[bytes]:
        args = ["tune", "-c", str(cfg), "--study-name", NAME, "--save-dir", str(runs), "--no-report"]
        args += ["--trials", str(remaining), "--plugin", FAULTS] + (["--resume"] if db.exists() else [])
        log = open(tmp_path / f"run-{launches}.log", "wb")  # noqa: SIM115  (closed with the process)
        extra = {"TUNELAB_TEST_SLOW_WRITES": "0.3"} if slow_writes else {}
        return subprocess.Popen(cli_cmd(*args), cwd=tmp_path, env=env(**extra), stdout=log, stderr=subprocess.STDOUT)

    def finished() -> int:
        return sum(t.state.name in FINISHED for t in trials_of(db, NAME)) if db.exists() else 0

    while kills < n_kills:
        remaining = n_trials - finished()
        assert remaining > 0, f"the study finished after {kills} kills; make trials slower or kill sooner"
        mode = MODES[kills % len(MODES)]
        proc = launch(remaining, slow_writes=mode == "write")
        launches += 1
        started = _count("trials/*/config.json", study_dir)
        csv_time = _mtime(study_dir / "trials.csv")
        if mode == "trial":  # inside a trial: training, or writing its per-epoch files
            hit = _wait(proc, lambda s=started: _count("trials/*/config.json", study_dir) > s)
            time.sleep(rng.uniform(0.0, 0.6))
        elif mode == "write":  # while an artifact is half-written to its temporary file
            old = set(_temp_files(study_dir))  # left by earlier kills
            hit = _wait(
                proc,
                lambda s=started, o=old: (
                    _count("trials/*/config.json", study_dir) > s and bool(set(_temp_files(study_dir)) - o)
                ),
            )
        else:  # after a trial was told and its artifacts rewritten, around the next trial's start
            hit = _wait(proc, lambda c=csv_time: _mtime(study_dir / "trials.csv") != c)
            time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        if not hit:  # ended on its own before the moment came
            assert proc.returncode == 0, (tmp_path / f"run-{launches - 1}.log").read_text()[-3000:]
            continue
        kills += 1
        modes_hit[mode] = modes_hit.get(mode, 0) + 1
        if mode == "write":  # the kill did land inside a write: its half-written temporary file is there
            assert set(_temp_files(study_dir)) - old
        trials = trials_of(db, NAME)
        interrupted |= {t.number for t in trials if t.state.name == "RUNNING"}
        now = snapshot(trials)
        changed = [n for n, v in known.items() if now.get(n) != v]
        lost += len(changed)
        assert not changed, f"kill {kills} ({mode}): finished trials {changed} lost or changed"
        known = now
        temps |= set(check_artifacts(study_dir))

    # the last resume runs to the end without a kill
    remaining = n_trials - finished()
    done = subprocess.run(
        cli_cmd("tune", "-c", str(cfg), "--study-name", NAME, "--save-dir", str(runs), "--no-report")
        + ["--trials", str(remaining), "--plugin", FAULTS, "--resume"],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    trials = trials_of(db, NAME)
    states = [t.state.name for t in trials]
    FIGURES["kills"] += kills
    FIGURES["temp_files_ignored"] += len(temps)
    FIGURES["trials_lost"] += lost + sum(snapshot(trials).get(n) != v for n, v in known.items())
    FIGURES["interrupted_failed"] += sum(trials[n].state.name == "FAIL" for n in interrupted)
    assert sum(s in FINISHED for s in states) == n_trials, states
    assert "RUNNING" not in states and "WAITING" not in states, states
    assert all(trials[n].state.name == "FAIL" for n in interrupted), {n: trials[n].state.name for n in interrupted}
    assert all(snapshot(trials).get(n) == v for n, v in known.items())
    assert set(modes_hit) == set(MODES), modes_hit
    check_artifacts(study_dir)
    rows = (study_dir / "trials.csv").read_text().splitlines()
    assert len(rows) == len(trials) + 1  # every trial in the storage is in trials.csv


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q"])
