"""A trial's storage writes, per storage: what a study spends outside training on each trial.

Each trial does what a tunelab trial writes: ask, three suggested parameters, ``--epochs``
intermediate values (one report per epoch), eight user attributes (what the objective records
when a trial starts and ends) and the tell.  Storages, each opened as ``tunelab tune`` opens it
(:func:`tunelab.storage.make_storage`), except the first:

* ``sqlite (Optuna)``: Optuna's own ``RDBStorage`` on a file: SQLite's default rollback journal,
  an fsync per commit;
* ``sqlite (tunelab)``: the same file kind as tunelab opens it (write-ahead log, no fsync per commit);
* ``journal (tunelab)``: a journal file (fsynced when a trial ends).

::

    python benchmarks/writes.py [--trials 100] [--epochs 20] [--append]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import warnings
from datetime import date
from pathlib import Path
from typing import Any

import optuna

from tunelab.storage import make_storage

HERE = Path(__file__).resolve().parent


def one_study(storage: Any, trials: int, epochs: int) -> float:
    """Seconds a trial's writes take, averaged over ``trials``."""
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    t0 = time.perf_counter()
    for _ in range(trials):
        trial = study.ask()
        for name in ("lr", "dropout", "weight_decay"):
            trial.suggest_float(name, 1e-4, 1.0, log=True)
        for epoch in range(1, epochs + 1):
            trial.report(1.0 / epoch, epoch)
        for key in range(8):
            trial.set_user_attr(f"attr{key}", key)
        study.tell(trial, 0.5)
    return (time.perf_counter() - t0) / trials


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=20, help="intermediate values per trial (default 20)")
    ap.add_argument("--append", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    writes = 1 + 3 + args.epochs + 8 + 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        storages = {
            "sqlite (Optuna)": lambda: optuna.storages.RDBStorage(f"sqlite:///{tmp}/optuna.db"),
            "sqlite (tunelab)": lambda: make_storage(f"sqlite:///{tmp}/tunelab.db"),
            "journal (tunelab)": lambda: make_storage(f"journal:///{tmp}/tunelab.log"),
        }
        for name, open_storage in storages.items():
            seconds = one_study(open_storage(), args.trials, args.epochs)
            rows.append((name, seconds))
            print(f"{name}: {seconds * 1000:.1f} ms a trial", flush=True)
    base = rows[0][1]
    lines = [
        f"### A trial's storage writes ({date.today()})",
        "",
        f"Command: `python benchmarks/writes.py --trials {args.trials} --epochs {args.epochs}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, "
        f"optuna {optuna.__version__}; a trial = {writes} writes (ask, 3 parameters, {args.epochs} reports, "
        "8 attributes, tell).",
        "",
        "| storage | ms a trial | ms a write | vs Optuna's SQLite |",
        "|---|---:|---:|---:|",
        *(f"| {n} | {s * 1000:.1f} | {s * 1000 / writes:.2f} | {base / s:.1f}x |" for n, s in rows),
    ]
    print("\n".join(lines))
    if args.append:
        with open(HERE / "RESULTS.md", "a") as fh:
            fh.write("\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
