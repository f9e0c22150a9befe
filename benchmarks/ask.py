"""Asking and beginning a pack's batch of trials: ``Study.ask`` one by one vs ``BatchAsker``.

The default portfolio study on JapaneseVowels, SQLite storage, TPE with constant liar (what a GPU
study with ``--pack-size auto`` asks at each batch).  Both ways draw the same configs; the table
gives the seconds to ask and begin ``k`` trials, then the shape groups they form::

    python benchmarks/ask.py --sizes 64,256 [--append]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import warnings
from datetime import date

import optuna
from results_md import publish

from tunelab.tune import TuneOptions, study_from_mapping
from tunelab.tune.execution.asking import BatchAsker
from tunelab.tune.execution.objective import Objective
from tunelab.tune.execution.packs import _groups
from tunelab.tune.prepare import prepare_study


def ask_and_begin(k: int, batch: bool) -> tuple[float, list[int], list[dict]]:
    study = study_from_mapping({"name": "ask", "base": {"data": {"name": "japanese_vowels"}}})
    opts = TuneOptions(save_dir=tempfile.mkdtemp(), report=False, pack_size=k, reference=False, portfolio=True)
    p = prepare_study(study, opts)
    objective = Objective(p.space, p.objectives, p.study_dir, data=p.cache)
    t0 = time.perf_counter()
    asker = BatchAsker(p.study, objective.space.suggest)
    begun = []
    for _ in range(k):
        trial = asker.ask() if batch else p.study.ask()
        begun.append((trial, objective.begin(trial)))
    seconds = time.perf_counter() - t0
    groups = sorted((len(g) for g in _groups(begun, objective.data.get)), reverse=True)
    return seconds, groups, [t.params for t, _ in begun]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="64,256", help="batch sizes, comma-separated")
    ap.add_argument("--append", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    for k in (int(s) for s in args.sizes.split(",")):
        old, groups, drawn_old = ask_and_begin(k, batch=False)
        new, _, drawn_new = ask_and_begin(k, batch=True)
        rows.append((k, old, new, groups, drawn_old == drawn_new))
        print(f"k={k}: Study.ask {old:.1f} s, BatchAsker {new:.1f} s, same draws {drawn_old == drawn_new}", flush=True)
    lines = [
        f"### Asking a pack's batch ({date.today()})",
        "",
        f"Command: `python benchmarks/ask.py --sizes {args.sizes}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
        "the default portfolio on JapaneseVowels, SQLite, TPE with constant liar.",
        "",
        "| trials asked and begun | Study.ask (s) | BatchAsker (s) | ratio | same configs | shape groups |",
        "|---:|---:|---:|---:|---|---|",
        *(
            f"| {k} | {old:.1f} | {new:.1f} | {old / new:.1f}x | {same} | {len(g)}: {', '.join(map(str, g))} |"
            for k, old, new, g, same in rows
        ),
    ]
    publish("\n".join(lines), args.append)


if __name__ == "__main__":
    sys.exit(main())
