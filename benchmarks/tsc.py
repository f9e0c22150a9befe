"""The default study on public UCR/UEA classification datasets, beside MiniRocket (issue 16).

For each dataset: ``tunelab tune --data-path DIR --timeout S --save-dir OUT`` (no model flag: the
default study, whatever it is at the time), then the best trial's test accuracy from
``study_results.json`` and MiniRocket's (the study's own reference, fitted on the same split).
Published InceptionTime / HIVE-COTE 2 accuracies join from ``benchmarks/published_tsc.csv`` when
that file exists (columns ``dataset,InceptionTime,HC2``, with its source cited in a comment).

Datasets come from installed packages, never downloaded: aeon's wheel ships these under
``aeon/datasets/data/<Name>/<Name>_TRAIN.ts`` (their official train/test split).  Only 8 of them
are classification datasets, fewer than the issue's 20; more need another offline source.

    python benchmarks/tsc.py --quick             # 3 small datasets, 20 s each, CPU
    python benchmarks/tsc.py --budget 300        # every shipped dataset (meant for a GPU)

Prints a table (accuracy per dataset, wins/ties/losses vs each reference, mean ranks) and appends
it to benchmarks/RESULTS.md with ``--append``.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUICK = ["GunPoint", "ItalyPowerDemand", "ArrowHead"]
FULL = [
    "ACSF1",
    "ArrowHead",
    "BasicMotions",
    "GunPoint",
    "ItalyPowerDemand",
    "JapaneseVowels",
    "OSULeaf",
    "PickupGestureWiimoteZ",
]
TIE = 0.005  # accuracies within half a point are a tie


def aeon_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name
    return d if (d / f"{name}_TRAIN.ts").is_file() else None


def staged(name: str, out: Path) -> Path:
    """A folder holding only NAME_TRAIN.ts and NAME_TEST.ts (aeon's folders hold other files too)."""
    src = aeon_dir(name)
    if src is None:
        raise SystemExit(f"{name}: not found in the installed aeon (pip install 'tunelab[baselines]')")
    dst = out / "data" / name
    dst.mkdir(parents=True, exist_ok=True)
    for part in ("TRAIN", "TEST"):
        target = dst / f"{name}_{part}.ts"
        if not target.exists():
            target.write_bytes((src / f"{name}_{part}.ts").read_bytes())
    return dst


def published() -> dict[str, dict[str, float]]:
    path = HERE / "published_tsc.csv"
    if not path.is_file():
        return {}
    rows = csv.DictReader(line for line in path.read_text().splitlines() if not line.startswith("#"))
    return {r["dataset"]: {k: float(v) for k, v in r.items() if k != "dataset" and v} for r in rows}


def run(name: str, budget: float, out: Path, device: str) -> dict[str, object]:
    data = staged(name, out)
    save = out / "studies"
    cmd = [sys.executable, "-m", "tunelab", "tune", "--data-path", str(data), "--timeout", str(budget)]
    cmd += ["--save-dir", str(save), "--study-name", name, "--no-report", "--device", device]
    t0 = time.perf_counter()
    try:  # --timeout bounds when trials start; a hard cap keeps one slow trial from taking the run
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=2 * budget + 120)
    except subprocess.TimeoutExpired:
        return {"dataset": name, "error": f"over {2 * budget + 120:g} s", "seconds": round(time.perf_counter() - t0, 1)}
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"dataset": name, "error": (proc.stderr or proc.stdout).strip().splitlines()[-1:], "seconds": seconds}
    results = json.loads((save / name / "study_results.json").read_text())
    best = (results.get("best_trial") or {}).get("metrics") or {}
    ref = results.get("reference") or {}
    return {
        "dataset": name,
        "tunelab": best.get("test_acc"),
        "MiniRocket": ref.get("test_acc"),
        "trials": results.get("n_trials"),
        "seconds": round(seconds, 1),
    }


def table(rows: list[dict[str, object]], refs: list[str]) -> str:
    cols = ["tunelab", *refs]
    lines = ["| dataset | " + " | ".join(cols) + " | trials | seconds |", "|---" * (len(cols) + 3) + "|"]
    ranks: dict[str, list[float]] = {c: [] for c in cols}
    wtl = {r: [0, 0, 0] for r in refs}
    for row in rows:
        vals = {c: row.get(c) for c in cols}
        lines.append(
            f"| {row['dataset']} | "
            + " | ".join("-" if not isinstance(v, float) else f"{v:.3f}" for v in vals.values())
            + f" | {row.get('trials', '-')} | {row.get('seconds', '-')} |"
        )
        present = {c: v for c, v in vals.items() if isinstance(v, float)}
        if len(present) == len(cols):
            for c, v in present.items():  # rank 1 = best, ties share the mean rank
                ranks[c].append(
                    1 + sum(o > v for o in present.values()) + 0.5 * (sum(o == v for o in present.values()) - 1)
                )
        t = vals["tunelab"]
        for r in refs:
            v = vals[r]
            if isinstance(t, float) and isinstance(v, float):
                wtl[r][0 if t > v + TIE else 1 if abs(t - v) <= TIE else 2] += 1
    lines.append("")
    lines += [
        f"- tunelab vs {r}: {w} wins / {t} ties / {lo} losses (tie: within {TIE * 100:g} points)"
        for r, (w, t, lo) in wtl.items()
    ]
    lines.append("- mean rank: " + ", ".join(f"{c} {sum(v) / len(v):.2f}" for c, v in ranks.items() if v))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 small datasets, 20 s each")
    ap.add_argument("--budget", type=float, default=None, help="seconds per dataset (default 20 quick, 300 full)")
    ap.add_argument("--datasets", default=None, help="comma-separated names (default: the mode's list)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "tsc")
    ap.add_argument("--append", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = ap.parse_args()
    names = args.datasets.split(",") if args.datasets else QUICK if args.quick else FULL
    budget = args.budget or (20.0 if args.quick else 300.0)
    pub = published()
    rows = []
    for name in names:
        row = run(name, budget, args.out, args.device)
        row |= pub.get(name, {})
        print(json.dumps(row), flush=True)
        rows.append(row)
    refs = ["MiniRocket", *sorted({k for p in pub.values() for k in p})]
    text = table(rows, refs)
    cmd = "python benchmarks/tsc.py " + " ".join(sys.argv[1:])
    block = f"\n## TSC: the default study vs MiniRocket ({time.strftime('%Y-%m-%d')}, `{cmd}`, {budget:g} s per dataset)\n\n{text}\n"
    print(block)
    (args.out).mkdir(parents=True, exist_ok=True)
    (args.out / "tsc.json").write_text(json.dumps(rows, indent=1))
    if args.append:
        with open(HERE / "RESULTS.md", "a") as fh:
            fh.write(block)


if __name__ == "__main__":
    main()
