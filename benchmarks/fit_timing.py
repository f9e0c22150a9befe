"""Time one whole ``tunelab.train.fit`` and print its seconds and per-epoch training losses (JSON).

For before/after comparisons of the training loop: run it alternately with each tree's sources
first on the path, several times, and compare the medians (and the losses, which should agree)::

    for i in 1 2 3; do for tree in /tmp/before /tmp/after; do
        PYTHONPATH=$tree/src python benchmarks/fit_timing.py; done; done

The workload: gesture-like data (``throughput.gesture_like``), a GRU 128x2, batch 32, 320
training series, 3 epochs after a 1-epoch warm-up, one CPU thread.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import gesture_like  # noqa: E402

import tunelab  # noqa: E402,F401  (registers the model families)
from tunelab.config import validate_config  # noqa: E402
from tunelab.train import fit  # noqa: E402


@dataclass
class _Splits:
    train: Any
    val: Any
    test: Any
    meta: Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=320, help="training series")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    n = args.samples
    data = gesture_like(n + n // 2, seed=0)
    cut = n + n // 4
    splits = _Splits(
        data.subset(torch.arange(n)),
        data.subset(torch.arange(n, cut)),
        data.subset(torch.arange(cut, len(data))),
        data.meta,
    )
    spec = {
        "model": {"name": "gru", "hidden_dim": 128, "num_layers": 2, "dropout": 0.2},
        "train": {"batch_size": 32, "max_epochs": args.epochs, "lr": 1e-3, "early_stopping": {"patience": None}},
        "device": "cpu",
    }
    cfg = validate_config(spec, "fit_timing")
    fit(cfg.model_copy(update={"train": cfg.train.model_copy(update={"max_epochs": 1})}), data=splits)  # warm-up
    t0 = time.perf_counter()
    result = fit(cfg, data=splits)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "losses": [r.metrics["train_loss"] for r in result.history]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
