"""Search efficiency: grid, random, TPE, TPE + median pruning and TPE + successive halving, at equal budgets.

    python benchmarks/search.py --quick                  # CPU, a few minutes: 2 seeds, tiny budget and model
    python benchmarks/search.py --jobs 12                # full: 5 seeds per method and dataset (meant for a GPU)
    python benchmarks/search.py --from-records benchmarks/out/search-<stamp>/records.jsonl   # re-render a run
    python benchmarks/search.py --out DIR --resume --max-studies 5   # add the studies DIR's records still miss

Every method runs tunelab's own tune machinery on an in-memory Optuna storage: the space comes from
``tune.space.build_space`` (the grid from a study file's ``grids:`` section, as ``tunelab tune --grid``
does), the sampler and pruner from ``tune.study.make_sampler``/``make_pruner`` (tunelab's defaults
under the options below), and each trial is ``tune.objective.Objective`` (the ``fit`` code path of
``tunelab train``).  Nothing about the search is re-implemented here.

The budget is counted in training epochs, summed over a study's trials (a pruned trial costs the
epochs it ran).  It equals the nominal cost of the grid (its size x ``max_epochs``), so the grid fits
once.  The other methods start trials until the budget is spent; the epoch that spends it ends the
running trial early (a ``StopTraining`` fit callback, so the trial keeps its best weights so far).
Wall-clock is reported beside it: the seconds from a study's start to each trial's end, after a
warm-up fit in the process (with ``--jobs`` > 1, studies share the device, so seconds are inflated
alike for every method).

Per dataset it reports, over the seeds: the best validation accuracy at 1/4, 1/2 and all of the
budget, the test accuracy of the model with the best validation accuracy, and the epochs and
seconds each method needed to match the grid's best validation accuracy of the same seed (the same
split and training seed).  A PNG shows best validation accuracy against epochs and against seconds.

Outputs go to ``benchmarks/out/search-<stamp>/`` (``--out``): records.jsonl (one line per study;
the first line holds the run's settings, device and command), table.md and search.png.  The table is
printed and appended as a dated, device-labelled section to benchmarks/RESULTS.md (``--no-write`` to
skip).  ``--from-records`` rebuilds table, PNG and section from a records file (e.g. one brought back
from a GPU machine), keeping the command and device it was measured with.  The recorded command
leaves out --out and --no-write, which only say where results go.  ``--resume`` keeps the studies
already in ``--out``'s records.jsonl (same settings) and runs the missing ones, ``--max-studies``
at most that many: a run can be split over several calls of a time-limited device.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import platform
import re
import shlex
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

RESULTS = ROOT / "benchmarks" / "RESULTS.md"
OBJECTIVE = "val_acc"
METHODS = ("grid", "random", "tpe", "tpe+median", "tpe+sha")
DATASETS = ("japanese_vowels", "gestures")
TITLES = {"japanese_vowels": "JapaneseVowels", "gestures": "Gestures (synthetic, seed 004's shape)"}


# --------------------------------------------------------------------------- settings


@dataclass
class Settings:
    """Everything a run depends on (written to records.jsonl, so a run can be re-rendered)."""

    quick: bool
    seeds: list[int]
    datasets: list[str]
    methods: list[str]
    max_epochs: int
    patience: int | None
    device: str
    jobs: int
    threads: int
    grid: dict[str, list[Any]] = field(default_factory=dict)
    space: dict[str, Any] = field(default_factory=dict)
    base_model: dict[str, Any] = field(default_factory=dict)
    base_train: dict[str, Any] = field(default_factory=dict)
    data: dict[str, dict[str, Any]] = field(default_factory=dict)
    samplers: dict[str, dict[str, Any]] = field(default_factory=dict)
    pruners: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid.values())

    @property
    def budget(self) -> int:
        """Epochs per study: the grid's nominal cost."""
        return self.grid_size * self.max_epochs


def make_settings(args: argparse.Namespace) -> Settings:
    """The quick (CPU smoke) or full configuration, with command-line overrides."""
    quick = bool(args.quick)
    if quick:
        # Tiny: 4 grid points x 3 epochs = 12 epochs per study; an 8-32 unit GRU.
        grid: dict[str, list[Any]] = {"train.lr": [3e-3, 1e-2], "model.hidden_dim": [8, 16]}
        space: dict[str, Any] = {
            "train.lr": {"low": 1e-3, "high": 3e-2, "log": True},
            "model.hidden_dim": [8, 16, 32],
            "model.dropout": {"low": 0.0, "high": 0.3},
        }
        max_epochs, patience = 3, None
        gestures = {"n": 400, "classes": 8}
        tpe_startup, median, sha = 2, {"n_startup_trials": 1, "n_warmup_steps": 1}, {"reduction_factor": 2}
    else:
        # Seed 002's quick grid in spirit: two hand-picked values per key (16 points); random and
        # TPE search a wider space that contains every grid point, plus depth and weight decay.
        grid = {
            "train.lr": [1e-3, 5e-3],
            "train.batch_size": [16, 32],
            "model.hidden_dim": [32, 128],
            "model.dropout": [0.0, 0.3],
        }
        space = {
            "train.lr": {"low": 3e-4, "high": 3e-2, "log": True},
            "train.batch_size": [16, 32, 64],
            "model.hidden_dim": [32, 64, 128],
            "model.num_layers": {"low": 1, "high": 2},
            "model.dropout": {"low": 0.0, "high": 0.5},
            "train.weight_decay": {"low": 1e-6, "high": 1e-2, "log": True},
        }
        max_epochs, patience = 24, 8
        gestures = {"n": 3200, "classes": 20}
        tpe_startup = 10  # Optuna's default
        median = {}  # tunelab's defaults: 5 startup trials, 5 warm-up epochs
        sha = {"reduction_factor": 3}
    max_epochs = args.max_epochs or max_epochs
    n_seeds = args.seeds or (2 if quick else 5)
    sha = {"min_resource": max(1, max_epochs // 8), **sha}
    data = {
        "japanese_vowels": {"name": "japanese_vowels"},
        # seed 004's smartwatch gestures: 3 axes, 10-50 steps, 20 classes, 3,200 sequences; noise 1.0
        # (the generator's default 0.3 is solved by any GRU in a few epochs, which would tie every method)
        "gestures": {
            "name": "synthetic_gestures",
            "options": {"channels": 3, "min_len": 10, "max_len": 50, "noise": 1.0, "seed": 0, **gestures},
        },
    }
    return Settings(
        quick=quick,
        seeds=list(range(n_seeds)),
        datasets=list(args.datasets or DATASETS),
        methods=list(args.methods or METHODS),
        max_epochs=max_epochs,
        patience=patience,
        device=args.device,
        jobs=args.jobs or 1,
        threads=args.threads or 1,
        grid=grid,
        space=space,
        base_model={"name": "gru", "hidden_dim": 64, "num_layers": 1, "pooling": "last"},
        base_train={"batch_size": 32, "lr": 3e-3},
        data=data,
        samplers={
            "grid": {"name": "grid"},
            "random": {"name": "random"},
            "tpe": {"name": "tpe", "options": {"n_startup_trials": tpe_startup}},
        },
        pruners={
            "none": {"name": "none"},
            "median": {"name": "median", "options": median},
            "sha": {"name": "successive_halving", "options": sha},
        },
    )


def method_parts(method: str) -> tuple[str, str]:
    """(sampler key, pruner key) of a method name."""
    sampler, _, pruner = method.partition("+")
    return sampler, pruner or "none"


def study_mapping(s: Settings, dataset: str, seed: int) -> dict[str, Any]:
    """The study file this benchmark runs, as ``tunelab tune -c`` would read it."""
    train = {**s.base_train, "max_epochs": s.max_epochs, "early_stopping": {"patience": s.patience}}
    return {
        "name": f"search-{dataset}",
        "base": {"data": s.data[dataset], "model": s.base_model, "train": train, "seed": seed, "device": s.device},
        "space": s.space,
        "grids": {"quick": s.grid},
        "objective": OBJECTIVE,
        "seed": seed,
    }


# --------------------------------------------------------------------------- one study (worker process)

_SPLITS: dict[tuple[str, int], Any] = {}
_WARM: set[str] = set()


def _worker_setup(threads: int) -> None:
    import optuna
    import torch

    torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("tunelab").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _splits(s: Settings, dataset: str, seed: int, base: Any) -> Any:
    """Prepared splits, once per process, dataset and seed (the validation split moves with the seed)."""
    from tunelab.data import prepare
    from tunelab.train import fit

    key = (dataset, seed)
    if key not in _SPLITS:
        _SPLITS[key] = prepare(base.data, seed)
    if dataset not in _WARM:  # first-use costs (allocator, kernels, threads) stay out of the timings
        fit(base.model_copy(update={"train": base.train.model_copy(update={"max_epochs": 1})}), data=_SPLITS[key])
        _WARM.add(dataset)
    return _SPLITS[key]


def run_study(s: Settings, dataset: str, method: str, seed: int, scratch: str) -> dict[str, Any]:
    """One Optuna study (in memory) of ``method`` on ``dataset`` with ``seed``, until the budget is spent."""
    _worker_setup(s.threads)
    import optuna

    from tunelab.config import PrunerConfig, SamplerConfig, study_from_mapping
    from tunelab.results.attrs import TRIAL
    from tunelab.train.callbacks import BaseCallback, EpochReport, FitContext, StopTraining
    from tunelab.tune.execution.objective import Objective, TrialFailed
    from tunelab.tune.space import build_space
    from tunelab.tune.study import make_pruner, make_sampler, open_study

    cfg = study_from_mapping(study_mapping(s, dataset, seed), f"search.py ({dataset})")
    sampler_key, pruner_key = method_parts(method)
    sampler_cfg = SamplerConfig.model_validate(s.samplers[sampler_key])
    grid = sampler_cfg.name == "grid"
    space = build_space(cfg, grid="quick" if grid else None)
    splits = _splits(s, dataset, seed, cfg.base)
    sampler = make_sampler(sampler_cfg, seed, 1, space.grid_search_space() if grid else None)
    pruner = make_pruner(PrunerConfig.model_validate(s.pruners[pruner_key]))
    study = open_study(
        optuna.storages.InMemoryStorage(),
        f"{dataset}-{method}-{seed}",
        directions=["maximize"],
        sampler=sampler,
        pruner=pruner,
        resume=False,
        shown_storage="in-memory",
    )
    budget = s.budget
    spent = {"epochs": 0}

    class Budget(BaseCallback):
        """Ends the running trial on the epoch that spends the study's budget."""

        def on_epoch_end(self, ctx: FitContext, report: EpochReport) -> None:
            if spent["epochs"] + report.epoch >= budget:
                raise StopTraining("epoch budget spent")

    trials: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=scratch) as study_dir:
        objective = Objective(space, [OBJECTIVE], study_dir, data=splits, callbacks=[Budget()])
        t0 = time.perf_counter()

        def after(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            epochs = int(trial.user_attrs.get(TRIAL.EPOCHS, 0))
            spent["epochs"] += epochs
            metrics = trial.user_attrs.get(TRIAL.METRICS) or {}
            complete = trial.state.name == "COMPLETE"
            trials.append(
                {
                    "number": trial.number,
                    "state": trial.state.name,
                    "value": trial.value if complete else None,
                    "test_acc": metrics.get("test_acc") if complete else None,
                    "epochs": epochs,
                    "cum_epochs": spent["epochs"],
                    "t": time.perf_counter() - t0,
                    "params": trial.params,
                    "reason": trial.user_attrs.get(TRIAL.REASON, ""),
                }
            )
            if spent["epochs"] >= budget:
                study.stop()

        # the grid stops itself when exhausted; the cap only guards against a runaway loop
        study.optimize(objective, n_trials=budget, catch=(TrialFailed,), callbacks=[after])
    return {"dataset": dataset, "method": method, "seed": seed, "budget": budget, "trials": trials}


# --------------------------------------------------------------------------- running


def device_label(device: str) -> str:
    """``NVIDIA H100 80GB HBM3 (CUDA)`` or ``CPU (x86_64, 2 cores)``."""
    import torch

    from tunelab.train.device import resolve_device

    dev = resolve_device(device)
    if dev.type == "cuda":
        return f"{torch.cuda.get_device_name(dev)} (CUDA)"
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


_RUN_ONLY = ("jobs", "threads")  # settings that change the speed of a run, not what it measures


def run_all(
    s: Settings, out: Path, command: str, resume: bool = False, max_studies: int | None = None
) -> list[dict[str, Any]]:
    """Run every (seed, dataset, method) study; append each to records.jsonl as it finishes.

    With ``resume``, the studies already in ``out/records.jsonl`` (same settings) are kept and
    only the missing ones run (an interrupted run, or one split over several device calls).
    """
    import optuna
    import torch

    out.mkdir(parents=True, exist_ok=True)
    records_path = out / "records.jsonl"
    run = {
        "command": command,
        "device": device_label(s.device),
        "jobs": s.jobs,
        "threads": s.threads,
        "date": dt.date.today().isoformat(),
    }
    records: list[dict[str, Any]] = []
    if resume and records_path.is_file():
        header, records = read_records(records_path)
        old = {k: v for k, v in header["settings"].items() if k not in _RUN_ONLY}
        new = {k: v for k, v in asdict(s).items() if k not in _RUN_ONLY}
        if old != new:
            changed = ", ".join(k for k in new if old.get(k) != new[k])
            raise SystemExit(f"--resume: {records_path} was made with other settings ({changed}); use another --out")
        header["runs"].append(run)
    else:
        header = {
            "settings": asdict(s),
            "runs": [run],
            "versions": {"torch": torch.__version__, "optuna": optuna.__version__, "python": platform.python_version()},
        }
    records_path.write_text("".join(json.dumps(x) + "\n" for x in [header, *records]))
    scratch = Path(tempfile.mkdtemp(prefix="trials-", dir=out))
    # seeds outermost: an interrupted run still has whole seeds for every method
    have = {(r["dataset"], r["method"], r["seed"]) for r in records}
    jobs = [(d, m, seed) for seed in s.seeds for d in s.datasets for m in s.methods if (d, m, seed) not in have]
    jobs = jobs[:max_studies]
    started = time.perf_counter()

    def done(rec: dict[str, Any]) -> None:
        records.append(rec)
        with records_path.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        best = max((t["value"] for t in rec["trials"] if t["value"] is not None), default=float("nan"))
        print(
            f"[{time.perf_counter() - started:6.0f}s] {len(records) - len(have)}/{len(jobs)} {rec['dataset']:<16} "
            f"{rec['method']:<11} seed {rec['seed']}: {len(rec['trials'])} trials, best {OBJECTIVE} {best:.3f}",
            flush=True,
        )

    try:
        if s.jobs == 1:
            for d, m, seed in jobs:
                done(run_study(s, d, m, seed, str(scratch)))
        else:
            import multiprocessing as mp

            with ProcessPoolExecutor(s.jobs, mp_context=mp.get_context("spawn")) as pool:
                futures = [pool.submit(run_study, s, d, m, seed, str(scratch)) for d, m, seed in jobs]
                for fut in as_completed(futures):
                    done(fut.result())
    finally:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
    return records


def read_records(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(header, one record per study) of a records.jsonl."""
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    header = lines[0]
    if "runs" not in header:  # the first layout: one run's command/device/date at the top
        header["runs"] = [{k: header.pop(k) for k in ("command", "device", "date")}]
    for run in header["runs"]:
        if "jobs" not in run:  # ... with the concurrency inside the device label
            m = re.match(r"(?P<device>.*?), (?P<jobs>\d+) stud(y|ies) at a time, (?P<threads>\d+) ", run["device"])
            if m:
                run.update(device=m["device"], jobs=int(m["jobs"]), threads=int(m["threads"]))
    return header, lines[1:]


# --------------------------------------------------------------------------- analysis


def best_curve(trials: list[dict[str, Any]], xs: np.ndarray, key: str) -> np.ndarray:
    """Best complete-trial value reached by each x (``key``: cum_epochs or t); NaN before the first."""
    ys = np.full(len(xs), np.nan)
    best = -np.inf
    for t in sorted(trials, key=lambda t: t[key]):
        if t["value"] is None:
            continue
        best = max(best, t["value"])
        ys[xs >= t[key]] = np.fmax(ys[xs >= t[key]], best)
    return ys


def best_trial(trials: list[dict[str, Any]]) -> dict[str, Any] | None:
    done = [t for t in trials if t["value"] is not None]
    return max(done, key=lambda t: (t["value"], -t["number"])) if done else None


def to_reach(trials: list[dict[str, Any]], target: float) -> tuple[float, float] | None:
    """(epochs, seconds) at which the study first matched ``target``; None if it never did."""
    for t in sorted(trials, key=lambda t: t["cum_epochs"]):
        if t["value"] is not None and t["value"] >= target - 1e-9:
            return float(t["cum_epochs"]), float(t["t"])
    return None


def _ms(values: list[float], digits: int = 3) -> str:
    v = [x for x in values if x is not None and math.isfinite(x)]
    if not v:
        return "–"
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{np.mean(v):.{digits}f} ± {np.std(v, ddof=1):.{digits}f}"


def summarize(records: list[dict[str, Any]], dataset: str, methods: list[str]) -> list[dict[str, Any]]:
    """One row per method: means over seeds of the budget curve, test accuracy, time to the grid's best."""
    by = {(r["method"], r["seed"]): r for r in records if r["dataset"] == dataset}
    grid_best = {
        seed: bt["value"] for (m, seed), r in by.items() if m == "grid" and (bt := best_trial(r["trials"])) is not None
    }
    rows = []
    for m in methods:
        recs = [r for (mm, _), r in sorted(by.items()) if mm == m]
        if not recs:
            continue
        budget = recs[0]["budget"]
        at = {frac: [] for frac in (0.25, 0.5, 1.0)}
        for r in recs:
            for frac in at:
                at[frac].append(float(best_curve(r["trials"], np.array([frac * budget]), "cum_epochs")[0]))
        tests = [bt["test_acc"] for r in recs if (bt := best_trial(r["trials"])) is not None]
        reach = [to_reach(r["trials"], grid_best[r["seed"]]) for r in recs if r["seed"] in grid_best]
        hit = [x for x in reach if x is not None]
        rows.append(
            {
                "method": m,
                "seeds": len(recs),
                "trials": np.mean([len(r["trials"]) for r in recs]),
                "pruned": np.mean([sum(t["state"] == "PRUNED" for t in r["trials"]) for r in recs]),
                "epochs": np.mean([r["trials"][-1]["cum_epochs"] if r["trials"] else 0 for r in recs]),
                "seconds": np.mean([r["trials"][-1]["t"] if r["trials"] else 0.0 for r in recs]),
                "at": at,
                "test": tests,
                "reached": len(hit),
                "compared": len(reach),
                "reach_epochs": float(np.median([x[0] for x in hit])) if hit else None,
                "reach_seconds": float(np.median([x[1] for x in hit])) if hit else None,
                "budget": budget,
            }
        )
    return rows


def render_table(rows: list[dict[str, Any]]) -> list[str]:
    budget = rows[0]["budget"] if rows else 0
    lines = [
        f"| method | seeds | trials (pruned) | epochs used | seconds | best val acc @ {budget // 4} ep | "
        f"@ {budget // 2} ep | @ {budget} ep | test acc of best | epochs to grid best | seconds to grid best |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        reach_e = "–" if r["reach_epochs"] is None else f"{r['reach_epochs']:.0f}"
        reach_s = "–" if r["reach_seconds"] is None else f"{r['reach_seconds']:.1f}"
        lines.append(
            f"| {r['method']} | {r['seeds']} | {r['trials']:.1f} ({r['pruned']:.1f}) | {r['epochs']:.0f} | {r['seconds']:.1f} | "
            f"{_ms(r['at'][0.25])} | {_ms(r['at'][0.5])} | {_ms(r['at'][1.0])} | {_ms(r['test'])} | "
            f"{reach_e} ({r['reached']}/{r['compared']}) | {reach_s} |"
        )
    return lines


def plot(records: list[dict[str, Any]], datasets: list[str], methods: list[str], path: Path) -> None:
    """Best validation accuracy against epochs and seconds: mean over seeds, min-max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(datasets), 2, figsize=(11, 3.8 * len(datasets)), squeeze=False)
    colors = dict(zip(METHODS, ("black", "tab:blue", "tab:orange", "tab:green", "tab:red"), strict=True))
    for row, d in enumerate(datasets):
        recs = [r for r in records if r["dataset"] == d]
        if not recs:
            continue
        budget = recs[0]["budget"]
        t_max = max((r["trials"][-1]["t"] for r in recs if r["trials"]), default=1.0)
        for col, (key, xs, label) in enumerate(
            (
                ("cum_epochs", np.linspace(0, budget, 400), "training epochs (summed over trials)"),
                ("t", np.linspace(0, t_max, 400), "wall-clock seconds"),
            )
        ):
            ax = axes[row][col]
            for m in methods:
                curves = np.array([best_curve(r["trials"], xs, key) for r in recs if r["method"] == m])
                if not len(curves):
                    continue
                ok = ~np.isnan(curves).any(axis=0)  # drawn where every seed has a finished trial
                ax.plot(xs[ok], curves[:, ok].mean(axis=0), color=colors.get(m), label=m, lw=1.6)
                ax.fill_between(
                    xs[ok], curves[:, ok].min(axis=0), curves[:, ok].max(axis=0), color=colors.get(m), alpha=0.12
                )
            ax.set_xlabel(label)
            ax.set_ylabel(f"best {OBJECTIVE}")
            ax.set_title(TITLES.get(d, d))
            ax.grid(alpha=0.3)
        axes[row][0].legend(loc="lower right", fontsize=8)
    fig.suptitle("Best validation accuracy against budget (mean over seeds, band: min-max)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------- report


def _shown_command(command: str) -> str:
    head, *rest = shlex.split(command)[:2], *shlex.split(command)[2:]
    return shlex.join([*head, *_measured_args(rest)])


def describe(s: Settings, cuda: bool) -> list[str]:
    from tunelab.config.study import ParamSpec

    def kv(d: dict[str, Any]) -> str:
        return ", ".join(f"`{k}` {v}" for k, v in d.items())

    space = {k: ParamSpec.model_validate(v).describe() for k, v in s.space.items()}
    stopping = f"early stopping on val_loss with patience {s.patience}" if s.patience else "no early stopping"

    g = s.data["gestures"].get("options", {})
    about = {
        "japanese_vowels": "JapaneseVowels (official 270/370 train/test split, validation 20% of train, drawn with the seed)",
        "gestures": f"synthetic_gestures sized like seed 004's smartwatch data ({g.get('n')} sequences, "
        f"{g.get('channels')} channels, lengths {g.get('min_len')}-{g.get('max_len')}, {g.get('classes')} classes, "
        f"noise {g.get('noise')}; test 20% fixed, validation 20% of the rest)",
    }
    amp = "bf16 autocast, " if cuda else ""
    return [
        f"Data: {'; '.join(about[d] for d in s.datasets)}.",
        f"Model: GRU ({kv(s.base_model)}); training: AdamW, plateau schedule, {amp}"
        f"{s.max_epochs} epochs at most, {stopping}.  Objective: {OBJECTIVE} (maximised).",
        f"Grid (seed 002's quick-grid style, {s.grid_size} points): {kv(s.grid)}.",
        f"Random/TPE space: {kv(space)}.",
        f"Budget: {s.budget} epochs per study (= the grid's nominal cost), {len(s.seeds)} seeds "
        "(sampler seed = training seed = validation split).  TPE: tunelab's multivariate/group TPE, "
        f"{s.samplers['tpe']['options']['n_startup_trials']} startup trials.  Median pruner: "
        f"{kv(s.pruners['median']['options']) or 'tunelab defaults (5 startup trials, 5 warm-up epochs)'}; "
        f"successive halving: {kv(s.pruners['sha']['options'])}.",
        "Columns: means over seeds (± sample std); 'epochs/seconds to grid best': median over the seeds "
        "that matched the grid's best validation accuracy of the same seed (count in brackets).",
    ]


def render_section(header: dict[str, Any], records: list[dict[str, Any]], png: Path) -> tuple[str, str]:
    """(RESULTS.md section, tables only) for a run."""
    s = Settings(**header["settings"])
    mode = "quick" if s.quick else "full"
    tables: list[str] = []
    for d in s.datasets:
        rows = summarize(records, d, s.methods)
        if rows:
            tables += [f"**{TITLES.get(d, d)}**", "", *render_table(rows), ""]
    v = header["versions"]
    runs = header["runs"]
    devices = list(dict.fromkeys(r["device"] for r in runs))
    at_once = ", ".join(str(r.get("jobs", "?")) for r in runs)
    threads = ", ".join(dict.fromkeys(str(r.get("threads", "?")) for r in runs))
    if all(r.get("jobs") == 1 for r in runs):
        concurrency = f"one study at a time, {threads} torch thread(s)"
    else:
        concurrency = f"studies at a time: {at_once} (each its own process, {threads} torch thread(s))"
    commands = [f"`{_shown_command(r['command'])}`" for r in runs]
    if len(runs) > 1:
        commands[1:] = [f"{c} --resume" if "--resume" not in c else c for c in commands[1:]]
    try:
        shown_png = png.resolve().relative_to(ROOT)
    except ValueError:
        shown_png = png
    lines = [
        f"## Search efficiency ({mode}, {devices[0].removesuffix(' (CUDA)').split(' (')[0]}, {runs[-1]['date']})",
        "",
        f"Command{'s (one run, resumed in later calls)' if len(runs) > 1 else ''}: {'; then '.join(commands)}  ",
        f"Device: {'; '.join(devices)}; {concurrency}; torch {v['torch']}, optuna {v['optuna']}, "
        f"Python {v['python']}.  ",
        f"Curves: `{shown_png}` (git-ignored; the command writes it).",
        "",
        *describe(s, any("CUDA" in d for d in devices)),
        *(
            [
                f"The studies ran in {len(runs)} calls (the commands above; the later ones ran only the studies "
                "still missing), so wall-clock seconds are comparable only between studies that shared the "
                "device alike; epochs are not affected."
            ]
            if len(runs) > 1
            else []
        ),
        "",
        *tables,
    ]
    return "\n".join(lines), "\n".join(tables)


def append_results(section: str) -> None:
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    RESULTS.write_text(old.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n")


def report(header: dict[str, Any], records: list[dict[str, Any]], out: Path, write: bool) -> None:
    s = Settings(**header["settings"])
    out.mkdir(parents=True, exist_ok=True)
    png = out / "search.png"
    plot(records, s.datasets, s.methods, png)
    section, tables = render_section(header, records, png)
    (out / "table.md").write_text(section + "\n")
    print()
    print(tables)
    print(f"curves: {png}")
    if write:
        append_results(section)
        print(f"appended to {RESULTS}")


# --------------------------------------------------------------------------- main


def _measured_args(argv: list[str]) -> list[str]:
    """The arguments that shape the numbers: --out and --no-write only say where results go."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--out":
            skip = True
        elif a != "--no-write" and not a.startswith("--out="):
            out.append(a)
    return out


# --------------------------------------------------------------------------- packs


#: the space of ``--pack-study``: value parameters only, so every trial shares the pack
PACK_STUDY_SPACE = {
    "train.lr": {"low": 3e-4, "high": 1e-2, "log": True},
    "train.weight_decay": {"low": 1e-6, "high": 1e-2, "log": True},
    "model.dropout": {"low": 0.0, "high": 0.5},
    "train.beta1": {"low": 0.8, "high": 0.95},
    "train.clip_norm": {"low": 0.5, "high": 5.0},
    "loss.label_smoothing": {"low": 0.0, "high": 0.2},
}


def pack_study(
    n_trials: int,
    pack_size: str,
    device: str,
    max_epochs: int,
    write: bool,
    command: str,
    storage: str = "sqlite",
    hidden: int = 128,
) -> None:
    """The same study of ``n_trials`` twice, one trial at a time and in packs; wall-clock and best score.

    The space searches value parameters only (the seeds' GRU shape is fixed), so every trial can
    share a pack: learning rate, weight decay, dropout, Adam's beta1, clipping and label smoothing.
    Both runs use tunelab's ``tune`` (TPE; constant liar in pack mode, as ``--pack-size`` sets it)
    on a SQLite storage (tunelab's default) or a JournalStorage file, after a warm-up fit.  No
    MiniRocket reference is fitted (it is not what is measured, and would cost both runs alike).
    """
    import optuna
    import torch

    from tunelab.config import ExperimentConfig
    from tunelab.data import prepare
    from tunelab.train import fit
    from tunelab.tune import LogReporter, TuneOptions, study_from_mapping, tune

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    base = {
        "data": {"name": "japanese_vowels"},
        "model": {"name": "gru", "hidden_dim": hidden, "num_layers": 2},
        "train": {"batch_size": 32, "max_epochs": max_epochs, "early_stopping": {"patience": None}},
        "device": device,
    }
    space = PACK_STUDY_SPACE
    cfg0 = ExperimentConfig.model_validate(base)
    data = prepare(cfg0.data, cfg0.seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, size in (("one trial at a time", "1"), (f"packs ({pack_size})", pack_size)):
            url = f"journal:///{tmp}/{size}.log" if storage == "journal" else None  # None: <save-dir>/tunelab.db
            spec = {"name": "packs", "base": base, "space": space, "budget": {"n_trials": n_trials}}
            study = study_from_mapping({**spec, "objective": OBJECTIVE, "storage": url})
            fit(
                cfg0.model_copy(update={"train": cfg0.train.model_copy(update={"max_epochs": 1})}), data=data
            )  # warm-up
            t0 = time.perf_counter()
            result = tune(
                study,
                TuneOptions(save_dir=tmp, study_name=f"packs-{size}", report=False, pack_size=size, reference=False),
                data=data,
                reporter=LogReporter(),
            )
            seconds = time.perf_counter() - t0
            rows.append(
                (
                    label,
                    seconds,
                    result.best_values[0] if result.best_values else float("nan"),
                    result.best_metrics.get("test_acc", float("nan")),
                )
            )
            print(
                f"{label}: {n_trials} trials in {seconds:.1f} s, best val {rows[-1][2]:.4f}", flush=True
            )  # kept if a limit stops the next run
    base_s = rows[0][1]
    lines = [
        "| run | trials | wall-clock s | speed-up | best val_acc | its test_acc |",
        "|---|---:|---:|---:|---:|---:|",
        *(f"| {r[0]} | {n_trials} | {r[1]:.1f} | {base_s / r[1]:.2f}x | {r[2]:.4f} | {r[3]:.4f} |" for r in rows),
    ]
    label = device_label(device)
    section = "\n".join(
        [
            f"## A {n_trials}-trial study with and without packs, {dt.datetime.now():%Y-%m-%d %H:%M}, {label} (torch {torch.__version__}), {storage} storage",
            "",
            f"`{command}`",
            "",
            *lines,
        ]
    )
    print(section)
    if write:
        append_results(section)
        print(f"appended to {RESULTS}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny CPU smoke run (2 seeds, 12-epoch budget)")
    parser.add_argument("--datasets", nargs="+", choices=DATASETS)
    parser.add_argument("--methods", nargs="+", choices=METHODS)
    parser.add_argument("--seeds", type=int, help="number of seeds (default 5; 2 with --quick)")
    parser.add_argument("--max-epochs", type=int, help="epochs per trial (the budget is grid size x this)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--jobs", type=int, help="studies run at once, each in its own process (default 1)")
    parser.add_argument("--threads", type=int, help="torch threads per study (default 1)")
    parser.add_argument("--out", type=Path, help="output folder (default benchmarks/out/search-<stamp>)")
    parser.add_argument("--from-records", type=Path, help="re-render a records.jsonl instead of running")
    parser.add_argument("--resume", action="store_true", help="keep the studies in --out's records.jsonl, run the rest")
    parser.add_argument("--max-studies", type=int, help="run at most this many (missing) studies, seeds first")
    parser.add_argument("--no-write", action="store_true", help="do not append to benchmarks/RESULTS.md")
    parser.add_argument("--pack-study", type=int, metavar="N", help="instead: an N-trial study with and without packs")
    parser.add_argument("--pack-size", default="auto", help="with --pack-study: auto or K (default auto)")
    parser.add_argument(
        "--pack-storage", choices=("sqlite", "journal"), default="sqlite", help="with --pack-study: the study storage"
    )
    parser.add_argument(
        "--pack-hidden",
        type=int,
        default=128,
        help="with --pack-study: the GRU's width (128, the seeds'; less for a smoke test)",
    )
    args = parser.parse_args(argv)

    if args.pack_study:
        command = "python " + " ".join(shlex.quote(a) for a in ["benchmarks/search.py", *_measured_args(sys.argv[1:])])
        epochs = args.max_epochs or (5 if args.quick else 30)
        pack_study(
            args.pack_study,
            args.pack_size,
            args.device,
            epochs,
            not args.no_write,
            command,
            storage=args.pack_storage,
            hidden=args.pack_hidden,
        )
        return
    if args.from_records is not None:
        header, records = read_records(args.from_records)
        out = args.out or args.from_records.parent
        report(header, records, out, write=not args.no_write)
        return
    s = make_settings(args)
    out = args.out or ROOT / "benchmarks" / "out" / f"search-{time.strftime('%Y%m%d-%H%M%S')}"
    command = "python " + " ".join(shlex.quote(a) for a in ["benchmarks/search.py", *_measured_args(sys.argv[1:])])
    _worker_setup(s.threads)
    records = run_all(s, out, command, resume=args.resume, max_studies=args.max_studies)
    header, _ = read_records(out / "records.jsonl")
    report(header, records, out, write=not args.no_write)


if __name__ == "__main__":
    main()
