"""Ctrl+C at random moments of real studies: how often does one end badly?

Each run starts ``tunelab tune`` on a tiny study (as a terminal's foreground job: Python's own
SIGINT handler), waits until a trial has reported an epoch, sleeps a random delay, sends SIGINT,
and checks what a user must get: exit code 130, no traceback, no trial left RUNNING.  A run that
breaks one of these is counted with its reason; its output is kept under ``--out``.

    python benchmarks/interrupts.py --runs 40                         # this tree, one at a time and packs
    python benchmarks/interrupts.py --runs 40 --src /tmp/old/src      # another checkout's code, to compare
    python benchmarks/interrupts.py --runs 40 --append                # add the table to RESULTS.md

Slow by design (a few seconds a run); not part of the test suite, whose
``tests/reliability/test_signals.py`` runs each case once.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from results_md import publish

ROOT = Path(__file__).resolve().parent.parent
STUDY = {
    "name": "interrupts",
    "base": {
        "data": {
            "name": "synthetic_gestures",
            "options": {"n": 48, "classes": 3, "channels": 2, "min_len": 6, "max_len": 10},
        },
        "model": {"name": "gru", "hidden_dim": 8, "num_layers": 1, "dropout": 0.0},
        "train": {"max_epochs": 40, "batch_size": 16, "schedule": "none"},
        "loss": {"temperature_scaling": False},
        "device": "cpu",
    },
    "space": {"train.lr": {"low": 1e-3, "high": 3e-2, "log": True}, "model.hidden_dim": [4, 8]},
    "sampler": "random",
    "pruner": "none",
    "budget": {"n_trials": 8},
}
MODES = {"one at a time": [], "packs of 2": ["--pack-size", "2"]}
#: the child takes Ctrl+C as a terminal's foreground job does, even when this script runs in the background
AS_A_TERMINAL_JOB = "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "


def states(db: Path) -> list[str]:
    import optuna

    storage = optuna.storages.RDBStorage(f"sqlite:///{db}", engine_kwargs={"connect_args": {"timeout": 60}})
    try:
        return [t.state.name for t in optuna.load_study(study_name="s", storage=storage).get_trials(deepcopy=False)]
    finally:
        storage.engine.dispose()


def one_run(folder: Path, extra: list[str], max_delay: float, src: Path) -> str | None:
    """One interrupted study in ``folder``: None if it ended as it must, else what went wrong."""
    (folder / "study.yaml").write_text(yaml.safe_dump(STUDY, sort_keys=False))
    runs = folder / "runs"
    args = ["tune", "-c", "study.yaml", "--study-name", "s", "--save-dir", str(runs), "--no-report", *extra]
    code = AS_A_TERMINAL_JOB + "runpy.run_module('tunelab', run_name='__main__', alter_sys=True)"
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not list(runs.glob("s/trials/*/metrics.jsonl")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(random.uniform(0, max_delay))
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=300)
    (folder / "output.txt").write_text(out)
    left = states(runs / "tunelab.db").count("RUNNING") if (runs / "tunelab.db").exists() else 0
    problems = [
        f"exit {proc.returncode}" if proc.returncode != 130 else "",
        "traceback" if "Traceback" in out else "",
        f"{left} RUNNING" if left else "",
    ]
    return ", ".join(p for p in problems if p) or None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=40, help="interrupted studies per mode")
    p.add_argument("--max-delay", type=float, default=1.0, help="the signal comes 0..this many s after the first epoch")
    p.add_argument("--src", type=Path, default=ROOT / "src", help="the tunelab source tree to run")
    p.add_argument("--out", type=Path, default=None, help="keep every run's folder here (default: a temporary one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--append", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = p.parse_args()
    random.seed(args.seed)
    out = args.out or Path(tempfile.mkdtemp(prefix="tunelab-interrupts-"))
    rows = []
    for mode, extra in MODES.items():
        bad: dict[str, int] = {}
        for i in range(args.runs):
            folder = out / f"{mode.replace(' ', '-')}-{i}"
            folder.mkdir(parents=True)
            problem = one_run(folder, extra, args.max_delay, args.src)
            if problem is not None:
                bad[problem] = bad.get(problem, 0) + 1
                print(f"{mode} run {i}: {problem} ({folder})", flush=True)
        rows.append((mode, args.runs, bad))
    src = "" if args.src == ROOT / "src" else f" --src {args.src}"
    rev = subprocess.run(["git", "-C", str(args.src), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    text = (
        f"## Ctrl+C at random moments ({time.strftime('%Y-%m-%d %H:%M')}, tunelab at {rev.stdout.strip() or args.src})\n\n"
        f"`python benchmarks/interrupts.py --runs {args.runs} --max-delay {args.max_delay}{src}`: each run interrupts a"
        f" tiny 8-trial study 0-{args.max_delay:g} s after its first epoch; it must exit 130, print no traceback and"
        " leave no trial RUNNING.\n\n| mode | runs | clean | what went wrong |\n|---|---:|---:|---|\n"
    )
    for mode, runs, bad in rows:
        what = "; ".join(f"{k}: {v}" for k, v in sorted(bad.items())) or "-"
        text += f"| {mode} | {runs} | {runs - sum(bad.values())} | {what} |\n"
    publish(text, args.append)


if __name__ == "__main__":
    main()
