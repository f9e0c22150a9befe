"""Reliability suite: ``--long`` for deeper soaks; the run's figures are printed at the end."""

from __future__ import annotations

from collections import Counter
from typing import Any

import optuna
import pytest
import torch

import tunelab  # noqa: F401  (registers the built-in models and datasets)

optuna.logging.set_verbosity(optuna.logging.ERROR)
torch.set_num_threads(1)  # the CI machine is shared: one thread per process

#: what the suite survived, printed after the run (see docs/reliability.md)
FIGURES: Counter[str] = Counter()
_LABELS = {
    "kills": "SIGKILLs survived (study resumed after each)",
    "trials_lost": "finished trials lost or changed by a kill (must be 0)",
    "interrupted_failed": "trials interrupted by a kill, found FAIL after resume",
    "temp_files_ignored": "half-written temporary files a kill left (never read as artifacts)",
    "signals": "SIGINT/SIGTERM interruptions handled",
    "orphans": "worker processes stopped after their parent was SIGKILLed",
    "worker_trials": "trials finished by concurrent worker processes",
    "bad_inputs": "bad inputs tried (exit 2, one line, nothing half-created)",
    "memory_trials": "trials in one process under the memory bound",
    "oom_trials": "simulated out-of-memory trials contained",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--long", action="store_true", default=False, help="reliability: deeper soaks (more kills, trials, workers)"
    )


@pytest.fixture(scope="session")
def long_run(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--long"))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not FIGURES:
        return
    terminalreporter.section("tunelab reliability figures")
    for key, label in _LABELS.items():
        if key in FIGURES or key == "trials_lost":
            terminalreporter.write_line(f"{FIGURES.get(key, 0):>6}  {label}")
