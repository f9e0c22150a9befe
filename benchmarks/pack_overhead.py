"""Where a packed study's time goes outside the stacked math: one ``tune`` of ``--trials`` trials in
one pack (the ``search.py --pack-study`` space and model), printed as one JSON line.

For before/after comparisons of the study bookkeeping: run it alternately with each tree's sources
first on the path, several times, and compare each run's ``outside_s`` (the machine is shared)::

    for i in 1 2 3; do for tree in /tmp/before /tmp/after; do
        OMP_NUM_THREADS=1 PYTHONPATH=$tree/src python benchmarks/pack_overhead.py; done; done

Fields: ``total_s`` (``tune`` from the call to its return), ``first_step_s`` (from the call to the
pack's first training step: asking and beginning every trial, building the pack),
``math_s`` (the engine's epochs, training and validation, and each member's final metrics),
``final_s`` (of which the members' final metrics: their val and test outputs, whether run one
model at a time or as one stack, and the metrics of those outputs),
``outside_s`` (the rest: storage writes, run directories, pruner, tells), ``fsyncs`` (os.fsync
calls in the process: storage and artifact files), ``journal_writes`` (lines of the journal
file; 0 on SQLite) and ``best`` (the best validation accuracy, equal before and after).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from tunelab.config import ExperimentConfig
from tunelab.data import prepare
from tunelab.train import fit
from tunelab.tune import LogReporter, TuneOptions, study_from_mapping, tune

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search import PACK_STUDY_SPACE as SPACE  # noqa: E402  (the same study as search.py --pack-study)


class Timers:
    """Seconds inside the wrapped functions, and when the first of them started."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.final = 0.0  # of which the members' final metrics (and their stacked pass)
        self.first: float | None = None
        self.fsyncs = 0

    def wrap(self, fn: Callable[..., Any], final: bool = False) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            self.first = t if self.first is None else self.first
            try:
                return fn(*args, **kwargs)
            finally:
                took = time.perf_counter() - t
                self.seconds += took
                self.final += took if final else 0.0

        return timed

    def install(self) -> None:
        """Time the engine's epochs and the members' final metrics; count fsyncs."""
        trainer = importlib.import_module("tunelab.pack.trainer")
        member = importlib.import_module("tunelab.train.member")
        make_engine = trainer.make_engine

        def timed_engine(*args: Any, **kwargs: Any) -> Any:
            engine = make_engine(*args, **kwargs)
            engine.train_epoch, engine.epoch_metrics = self.wrap(engine.train_epoch), self.wrap(engine.epoch_metrics)
            if hasattr(engine, "final_outputs"):  # members that stop together, run as one stack
                engine.final_outputs = self.wrap(engine.final_outputs, final=True)
            return engine

        trainer.make_engine = timed_engine
        member.final_metrics = self.wrap(member.final_metrics, final=True)
        fsync = os.fsync

        def counted(fd: int) -> None:
            self.fsyncs += 1
            fsync(fd)

        os.fsync = counted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=100, help="trials, all in one pack (default 100)")
    parser.add_argument("--epochs", type=int, default=15, help="epochs per trial (default 15)")
    parser.add_argument("--hidden", type=int, default=8, help="the GRU's width (default 8: bookkeeping shows)")
    parser.add_argument("--storage", choices=("journal", "sqlite"), default="journal")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    base = {
        "data": {"name": "japanese_vowels"},
        "model": {"name": "gru", "hidden_dim": args.hidden, "num_layers": 2},
        "train": {"batch_size": 32, "max_epochs": args.epochs, "early_stopping": {"patience": None}},
        "device": "cpu",
    }
    cfg = ExperimentConfig.model_validate(base)
    data = prepare(cfg.data, cfg.seed)
    fit(cfg.model_copy(update={"train": cfg.train.model_copy(update={"max_epochs": 1})}), data=data)  # warm-up
    timers = Timers()
    timers.install()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"journal:///{tmp}/study.log" if args.storage == "journal" else None
        spec = {"name": "p", "base": base, "space": SPACE, "budget": {"n_trials": args.trials}, "objective": "val_acc"}
        study = study_from_mapping({**spec, "storage": url})
        opts = TuneOptions(save_dir=tmp, study_name="p", report=False, pack_size=args.trials, reference=False)
        t0 = time.perf_counter()
        result = tune(study, opts, data=data, reporter=LogReporter())
        total = time.perf_counter() - t0
        writes = len(Path(tmp, "study.log").read_bytes().splitlines()) if url else 0
    first = (timers.first or t0) - t0
    figures = {
        "total_s": round(total, 2),
        "first_step_s": round(first, 2),
        "math_s": round(timers.seconds, 2),
        "final_s": round(timers.final, 2),
        "outside_s": round(total - timers.seconds, 2),
        "fsyncs": timers.fsyncs,
        "journal_writes": writes,
        "best": round(result.best_values[0], 4),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
