"""Shared pieces of the reliability suite: tiny study files, the CLI in-process and in a
subprocess, storage read-back, and the artifact checks every scenario ends with."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Sequence
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import cli_cmd, env, run_cli  # noqa: F401  (the one CLI subprocess helper)

ROOT = Path(__file__).resolve().parents[2]
FAULTS = str(Path(__file__).resolve().parent / "plugins" / "faults.py")
FINISHED = ("COMPLETE", "PRUNED")

#: the smallest study that still trains: 48 short synthetic gestures, a GRU of a few units, 2 epochs
TINY_BASE: dict[str, Any] = {
    "data": {
        "name": "synthetic_gestures",
        "options": {"n": 48, "classes": 3, "channels": 2, "min_len": 6, "max_len": 10},
    },
    "model": {"name": "gru", "hidden_dim": 8, "num_layers": 1, "dropout": 0.0},
    "train": {"max_epochs": 2, "batch_size": 16, "schedule": "none"},
    "loss": {"temperature_scaling": False},
    "device": "cpu",
}


def study_file(path: Path, **kw: Any) -> Path:
    """Write a tiny study file; keyword arguments replace top-level keys."""
    data: dict[str, Any] = {
        "name": "rel",
        "base": TINY_BASE,
        "space": {"train.lr": {"low": 1e-3, "high": 3e-2, "log": True}, "model.hidden_dim": [4, 8]},
        "sampler": "random",
        "pruner": "median",
        "budget": {"n_trials": 2},
    }
    data.update(kw)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def invoke_main(args: Sequence[str], cwd: Path | None = None) -> Outcome:
    """``tunelab.cli.main()`` in this process (what the console script runs): UserError → one line
    on stderr and exit code 2.  Any other exception escapes (a traceback is a test failure)."""
    from tunelab import cli

    out, err = io.StringIO(), io.StringIO()
    argv, here = sys.argv, Path.cwd()
    sys.argv = ["tunelab", *args]
    code = 0
    try:
        if cwd is not None:
            os.chdir(cwd)
        with redirect_stdout(out), redirect_stderr(err):
            try:
                cli.main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
        os.chdir(here)
    return Outcome(code, out.getvalue(), err.getvalue())


# --------------------------------------------------------------------------- storage read-back


def trials_of(db: Path, name: str) -> list[Any]:
    """The study's trials, read straight from the SQLite file (a fresh storage each time)."""
    import optuna

    storage = optuna.storages.RDBStorage(f"sqlite:///{db}", engine_kwargs={"connect_args": {"timeout": 60}})
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    finally:
        storage.engine.dispose()


def snapshot(trials: Sequence[Any]) -> dict[int, tuple[str, Any, Any]]:
    """number → (state, values, params) of every trial that has ended."""
    return {t.number: (t.state.name, t.values, t.params) for t in trials if t.state.name in (*FINISHED, "FAIL")}


# --------------------------------------------------------------------------- artifacts


def is_temp(path: Path) -> bool:
    """A temporary file of an atomic write (``.<name>.<random>.tmp``): never an artifact."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


def check_artifacts(study_dir: Path) -> list[Path]:
    """Every artifact in the study directory parses; returns the leftover temporary files.

    JSON, YAML and CSV files parse whole; every line of a ``.jsonl`` parses; checkpoints load through
    tunelab's own safe loader.  A temporary file is never read as an artifact."""
    import torch

    from tunelab.baselines.reference import DECISIONS_FILE
    from tunelab.results.io import load_checkpoint

    temps = []
    for p in sorted(study_dir.rglob("*")):
        if not p.is_file():
            continue
        if is_temp(p):
            temps.append(p)
            continue
        text = None if p.suffix == ".pt" or p.suffix == ".db" else p.read_text()
        try:
            if p.suffix == ".json":
                json.loads(text)  # type: ignore[arg-type]
            elif p.suffix in (".yaml", ".yml"):
                yaml.safe_load(text)  # type: ignore[arg-type]
            elif p.suffix == ".csv":
                rows = list(csv.reader(io.StringIO(text)))  # type: ignore[arg-type]
                assert rows and all(len(r) == len(rows[0]) for r in rows), "ragged CSV"
            elif p.suffix == ".jsonl":
                for line in text.splitlines():  # type: ignore[union-attr]
                    json.loads(line)
            elif p.name == DECISIONS_FILE:  # MiniRocket's kept decision values, not a model
                assert isinstance(torch.load(p, map_location="cpu", weights_only=True), dict)
            elif p.suffix == ".pt":
                load_checkpoint(p)
        except Exception as exc:
            raise AssertionError(f"half-written artifact {p}: {exc}") from exc
    return temps
