"""Fifty trials in one process: resident memory (and CUDA memory on a GPU) stays flat after a
warm-up; no model, optimizer or tensor of a finished trial stays alive."""

from __future__ import annotations

import gc
import warnings
from pathlib import Path
from typing import Any

import torch

from tests.reliability.common import FINISHED, TINY_BASE, study_file
from tests.reliability.conftest import FIGURES
from tunelab.tune import LogReporter, TuneOptions, load_study_config, tune

MB = 1024 * 1024


def rss() -> int:
    """Resident set size of this process, in bytes (Linux /proc; ru_maxrss is a peak, not a level)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def live(kind: type) -> int:
    with warnings.catch_warnings():  # isinstance on every object touches deprecated torch aliases
        warnings.simplefilter("ignore")
        # type(), not isinstance(): a dead weakref.proxy raises ReferenceError when asked its class
        return sum(1 for o in gc.get_objects() if issubclass(type(o), kind))


class Sampler(LogReporter):
    """After each trial: collect garbage, then record RSS, CUDA memory, live modules/optimizers."""

    def __init__(self, warmup: int) -> None:
        super().__init__()
        self.warmup, self.samples = warmup, []  # type: ignore[var-annotated]
        self.base: dict[str, int] = {}

    def trial(self, study: Any, trial: Any) -> None:
        gc.collect()
        sample = {"rss": rss(), "cuda": torch.cuda.memory_allocated() if torch.cuda.is_available() else 0}
        if len(self.samples) in (self.warmup - 1, self.warmup + 9) or trial.number % 10 == 9:
            sample |= {"modules": live(torch.nn.Module), "optims": live(torch.optim.Optimizer)}
        self.samples.append(sample)


def test_fifty_trials_do_not_grow_memory(tmp_path: Path, long_run: bool) -> None:
    n, warmup = (200 if long_run else 50), 10
    base = {**TINY_BASE, "train": {**TINY_BASE["train"], "max_epochs": 1}}
    if torch.cuda.is_available():
        base["device"] = "cuda"
    # a wider space than the other tests: different sizes allocate differently
    space = {"train.lr": {"low": 1e-3, "high": 3e-2, "log": True}, "model.hidden_dim": [4, 8, 16, 32]}
    cfg = load_study_config(study_file(tmp_path / "s.yaml", base=base, space=space, budget={"n_trials": n}))
    rep = Sampler(warmup)
    opts = TuneOptions(save_dir=tmp_path, study_name="mem", report=False, pack_size=1)  # one trial at a time
    result = tune(cfg, opts, reporter=rep)
    assert sum(v for k, v in result.states.items() if k in FINISHED) == n
    s = rep.samples
    growth = (s[-1]["rss"] - s[warmup - 1]["rss"]) / MB
    FIGURES["memory_trials"] += n
    print(f"RSS after warm-up {s[warmup - 1]['rss'] / MB:.0f} MB, after {n} trials {s[-1]['rss'] / MB:.0f} MB")
    assert growth < 60, [round(x["rss"] / MB) for x in s]
    # what a trial builds is gone after it: the count of live modules/optimizers does not climb
    marks = [x for x in s[warmup - 1 :] if "modules" in x]
    assert max(m["modules"] for m in marks) <= marks[0]["modules"], marks
    assert max(m["optims"] for m in marks) <= max(marks[0]["optims"], 0), marks
    assert s[-1]["cuda"] - s[warmup - 1]["cuda"] < 16 * MB
