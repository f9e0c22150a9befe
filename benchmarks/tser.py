"""The default study on public time series extrinsic regression (TSER) datasets, beside MiniRocket.

For each dataset: ``tunelab tune --data-path DIR --timeout S`` with no model flag (the default
study), and from its ``study_results.json`` the best trial's test RMSE and MiniRocket's (the study's
own reference: MiniRocket features and a ridge regression, fitted in the same run on the same
split).  The data are the TSER datasets aeon's wheel carries (``aeon/datasets/data``: Covid3Month,
201 series of 84 days; CardanoSentiment, 107 series of 24 hours, 2 channels; Tan et al., "Time
series extrinsic regression", DMKD 2021), copied to ``OUT/data``; nothing is downloaded.

    python benchmarks/tser.py --budget 120 --append
    PYTHONPATH=OTHER/src python benchmarks/tser.py --label "at abc123"   # another tunelab, same table

Prints a table (RMSE in the targets' units; "vs MiniRocket" is the best trial's RMSE over
MiniRocket's, below 1 is better) and appends it to benchmarks/RESULTS.md with ``--append``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_md import publish  # noqa: E402
from tsc import run_tunelab  # noqa: E402

HERE = Path(__file__).resolve().parent
DATASETS = ["Covid3Month", "CardanoSentiment"]


def stage(names: list[str], out: Path) -> dict[str, Path]:
    """Copy each dataset's ``NAME_TRAIN.ts``/``NAME_TEST.ts`` from aeon's wheel to ``out/NAME``."""
    import aeon

    source = Path(aeon.__file__).parent / "datasets" / "data"
    folders = {}
    for name in names:
        if not (source / name / f"{name}_TRAIN.ts").is_file():
            sys.exit(f"error: {name}: not in {source}; choose from {', '.join(DATASETS)}")
        folders[name] = out / name
        shutil.copytree(source / name, folders[name], dirs_exist_ok=True)
    return folders


def _rmse(metrics: dict[str, Any] | None) -> float | None:
    mse = (metrics or {}).get("test_mse")
    return math.sqrt(mse) if isinstance(mse, (int, float)) else None


def run(name: str, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    save, study = args.out / "studies" / name, f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    cmd = ["tune", "--data-path", str(folder), "--timeout", f"{args.budget:g}", "--save-dir", str(save)]
    cmd += ["--study-name", study, "--no-report", "--device", args.device]
    t0 = time.perf_counter()
    rc, out = run_tunelab(*cmd, limit=args.budget + args.grace)
    row: dict[str, Any] = {"dataset": name, "seconds": round(time.perf_counter() - t0, 1)}
    if rc != 0:
        row["note"] = f"stopped at {args.budget + args.grace:g} s" if rc == -1 else out.strip()[-200:]
    results = save / study / "study_results.json"
    if results.is_file():
        res = json.loads(results.read_text())
        best = res.get("best_trial") or {}
        row |= {
            "tunelab": _rmse(best.get("metrics")),
            "MiniRocket": _rmse(res.get("reference")),
            "model": (best.get("params") or {}).get("model.name"),
            "trials": res.get("n_trials"),
        }
    return row


def _cell(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else ("" if v is None else str(v))


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    import torch

    head = (
        f"## TSER: the default study vs MiniRocket, test RMSE ({time.strftime('%Y-%m-%d %H:%M')}, {args.label})\n\n"
        f"`python benchmarks/tser.py --budget {args.budget:g} --device {args.device}` on {platform.machine()},"
        f" {torch.get_num_threads()} threads (torch {torch.__version__}); RMSE in the targets' units, lower is"
        " better; 'vs MiniRocket' is the best trial's RMSE over MiniRocket's.\n\n"
    )
    cols = ["dataset", "tunelab", "MiniRocket", "vs MiniRocket", "model", "trials", "seconds", "note"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        ours, ref = r.get("tunelab"), r.get("MiniRocket")
        r = r | {"vs MiniRocket": ours / ref if ours is not None and ref else None}
        lines.append("| " + " | ".join(_cell(r.get(c)) for c in cols) + " |")
    return head + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated names")
    p.add_argument("--budget", type=float, default=120, help="seconds per study")
    p.add_argument("--grace", type=float, default=120, help="seconds past the budget before SIGTERM")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=HERE / "out" / "tser")
    p.add_argument("--label", default="this checkout", help="names the tunelab measured, in the heading")
    p.add_argument("--append", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = p.parse_args(argv)
    folders = stage([n for n in args.datasets.split(",") if n], args.out / "data")
    rows = []
    for name, folder in folders.items():
        rows.append(run(name, folder, args))
        print(json.dumps(rows[-1]), flush=True)
    text = table(rows, args)
    publish(text, args.append)


if __name__ == "__main__":
    main()
