"""Training throughput: the seed teams' loop against tunelab's engine, in one process.

    python benchmarks/throughput.py --quick            # CPU, a couple of minutes
    python benchmarks/throughput.py                    # full (GPU if there is one)
    python benchmarks/throughput.py --pack --k 1 64 512   # add trial packs (K members per step)

The reference is the loop the seed teams wrote: a ``torch.utils.data.DataLoader`` with a padding
collate, ``.to(device)`` per batch, ``nn.GRU`` (cuDNN on GPU) over the padded batch, the last
step's output into a linear head, ``loss.item()`` every step, one trial at a time.  The engine
is tunelab's own training step, the one ``tunelab.train.fit`` runs (``tunelab.train.engine.Engine``:
index-slice batches on the device, no host sync per step, device-side loss sums and gradient
norms), on the same data, model size, batch size and optimizer; clipping off and fp32 in both, so
the arithmetic is the same.  Pack mode trains K
trials at once (``tunelab.pack``) and reports the aggregate samples/s of all members.  The GRU
also gets an experimental row, "fused layers": tunelab's GRU runs its layers one call each (so
LayerNorm can sit between them); that row runs the whole stack in one ``torch.gru`` call, as the
seeds' ``nn.GRU(num_layers=2)`` does, to measure what fusing would gain before the model adopts it.

Every row is measured after a warm-up, in this one process.  Columns: training samples/s (a
pack counts K x its batch), ratio to the reference, peak memory (process RSS high-water mark —
monotone over the run, so it is an upper bound for later rows — and CUDA max allocated for the
row), and the fraction of a measured matmul ceiling: a large matmul timed on this device gives
the achievable FLOP/s; the model's useful FLOPs per sample (forward + backward, unpadded) are
counted with ``torch.utils.flop_counter`` and multiplied by the samples/s.

The table is printed and appended as a dated, device-labelled section to benchmarks/RESULTS.md
(``--no-write`` to skip) with the exact command.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import tunelab  # noqa: E402,F401  (registers the model families)
from tunelab.config import ExperimentConfig, validate_config  # noqa: E402
from tunelab.data.base import DataMeta, SequenceData  # noqa: E402
from tunelab.models import build_model  # noqa: E402

RESULTS = ROOT / "benchmarks" / "RESULTS.md"


# --------------------------------------------------------------------------- data


def gesture_like(n: int = 3200, seed: int = 0) -> SequenceData:
    """Seed 004's shape: 3-axis sequences of length 10-50, 20 classes (a learnable signal)."""
    g = torch.Generator().manual_seed(seed)
    t_max, classes = 50, 20
    y = torch.randint(0, classes, (n,), generator=g)
    lengths = torch.randint(10, t_max + 1, (n,), generator=g)
    steps = torch.arange(t_max).float()[None, :, None]
    freq = (1 + y.float() % 5)[:, None, None] * 0.15
    phase = (y.float() // 5)[:, None, None] * torch.tensor([0.0, 0.7, 1.4])
    x = torch.sin(steps * freq + phase) + 0.3 * torch.randn(n, t_max, 3, generator=g)
    x = x * (steps < lengths[:, None, None])
    meta = DataMeta("gesture_like", 3, t_max, n_classes=classes, class_names=tuple(map(str, range(classes))))
    return SequenceData(x, lengths, y, meta)


def japanese_vowels() -> tuple[SequenceData | None, str]:
    """The JapaneseVowels train split via ``tunelab.data.prepare``, or None and why not."""
    try:
        from tunelab.config import DataConfig
        from tunelab.data import prepare
    except ImportError as exc:
        return None, f"tunelab.data.prepare is not available ({exc})"
    try:
        splits = prepare(DataConfig(name="japanese_vowels"), 0)
    except Exception as exc:  # noqa: BLE001  (offline machine, missing file: report and go on)
        return None, f"JapaneseVowels could not be loaded ({type(exc).__name__}: {exc})"
    return splits.train, ""


# --------------------------------------------------------------------------- the reference loop


class _SeqDataset(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """A list of variable-length ``[T_i, C]`` tensors, as the seeds kept them."""

    def __init__(self, data: SequenceData) -> None:
        self.items = [(data.x[i, : int(data.lengths[i])].clone(), int(data.y[i])) for i in range(len(data))]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.items[i]


def pad_collate(batch: list[tuple[Tensor, int]]) -> tuple[Tensor, Tensor, Tensor]:
    """Seed 004's PaddedPreprocessor: pad to the batch's longest sequence (and the lengths)."""
    xs, ys = zip(*batch, strict=True)
    lengths = torch.tensor([len(x) for x in xs])
    return nn.utils.rnn.pad_sequence(list(xs), batch_first=True), lengths, torch.tensor(ys)


class SeedGRU(nn.Module):
    """The seeds' GRUModel: nn.GRU over the padded batch, the last step's output, a linear head."""

    def __init__(self, channels: int, hidden: int, layers: int, classes: int, dropout: float) -> None:
        super().__init__()
        self.rnn = nn.GRU(channels, hidden, layers, batch_first=True, dropout=dropout)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def reference_runner(
    data: SequenceData, device: torch.device, model: nn.Module, batch_size: int, lr: float
) -> Callable[[], int]:
    """One epoch of the seeds' loop per call; returns the samples it trained on.

    ``model`` is :class:`SeedGRU` (called on the padded batch) or a tunelab model (called with
    the batch's lengths, which the collate also returns)."""
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(_SeqDataset(data), batch_size=batch_size, shuffle=True, collate_fn=pad_collate)
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    takes_lengths = not isinstance(model, SeedGRU)

    def epoch() -> int:
        model.train()
        seen, running = 0, 0.0
        for x, lengths, y in loader:
            x, y = x.to(device), y.to(device)
            opt.zero_grad()
            out = model(x, lengths.to(device)) if takes_lengths else model(x)
            loss = F.cross_entropy(out, y)
            loss.backward()
            opt.step()
            running += loss.item()  # the per-step host sync every seed script has
            seen += len(y)
        return seen

    return epoch


# --------------------------------------------------------------------------- the engine


def engine_config(family: str, batch_size: int, lr: float, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """Same optimizer and arithmetic as the reference: AdamW, no clipping, fp32, constant lr."""
    data = {
        "model": {"name": family, **(overrides or {})},
        "train": {
            "batch_size": batch_size,
            "lr": lr,
            "weight_decay": 1e-4,
            "optimizer": "adamw",
            "schedule": "none",
            "clip_norm": None,
            "amp": False,
        },
    }
    return validate_config(data, "benchmark")


def _fused_encode(self: Any, x: Tensor, lengths: Tensor) -> Tensor:
    """``RNNClassifier.encode`` (forward-only, no LayerNorm) with the layer stack in one call."""
    from tunelab.models.base import length_mask

    first = self.layers[0]
    weights = [w for rnn in self.layers for w in rnn._flat_weights]
    n = len(self.layers)
    h0 = x.new_zeros(n, x.shape[0], first.hidden_size)
    if isinstance(first, nn.LSTM):
        out = torch.lstm(x, [h0, h0], weights, True, n, self.drop.p, self.training, False, True)[0]
    else:
        out = torch.gru(x, h0, weights, True, n, self.drop.p, self.training, False, True)[0]
    return out * length_mask(lengths, x.shape[1]).unsqueeze(-1).to(out.dtype)  # type: ignore[no-any-return]


def engine_runner(
    data: SequenceData,
    device: torch.device,
    cfg: ExperimentConfig,
    fused: bool = False,
    graphs: bool = True,
    notes: list[str] | None = None,
) -> Callable[[], int]:
    """One epoch of the one loop's step for a single trial (``tunelab.train.engine.Engine``, what
    ``tunelab.train.fit`` runs, CUDA graphs included unless ``graphs=False``; it also measures each
    step's gradient norm, as fit reports it) per call; ``fused``: the GRU/LSTM stack in one call
    (see the module docstring).  A failed capture's reason goes to ``notes``."""
    import types

    from tunelab.train.engine import Engine

    engine = Engine([cfg], data.meta, data.to(device), device, graphs=graphs)
    if fused:
        engine.model.encode = types.MethodType(_fused_encode, engine.model)  # type: ignore[method-assign]

    def epoch() -> int:
        seen = engine.train_epoch()
        float(engine.loss_sum)  # one host sync per epoch, as fit does
        if notes is not None and engine.graph_error and engine.graph_error not in notes:
            notes.append(engine.graph_error)
        return seen

    return epoch


VARIANTS: dict[str, dict[str, Any]] = {
    "eager": {"tf32": False, "compile": False, "graphs": False, "amp": False},
    "tf32": {"tf32": True, "compile": False, "graphs": False, "amp": False},
    "graphs32": {"tf32": False, "compile": False, "graphs": True, "amp": False},
    "graphs": {"tf32": True, "compile": False, "graphs": True, "amp": False},
    "compile": {"tf32": True, "compile": True, "graphs": True, "amp": False},
    "bf16": {"tf32": True, "compile": True, "graphs": True, "amp": True},
}


def pack_configs(cfg: ExperimentConfig, k: int, amp: bool = False) -> list[ExperimentConfig]:
    """K members of ``cfg`` that differ in learning rate (a value parameter)."""
    lrs = torch.logspace(-3.5, -2.0, k).tolist() if k > 1 else [cfg.train.lr]
    return [cfg.model_copy(update={"train": cfg.train.model_copy(update={"lr": lr, "amp": amp})}) for lr in lrs]


def pack_runner(
    data: SequenceData, device: torch.device, cfg: ExperimentConfig, k: int, variant: str, notes: list[str]
) -> Callable[[], int]:
    """One epoch of a K-member trial pack per call (aggregate samples of all members)."""
    from tunelab.pack.engine import PackEngine

    opts = dict(VARIANTS[variant])
    amp = opts.pop("amp")
    engine = PackEngine(pack_configs(cfg, k, amp), data.meta, data.to(device), device, **opts)

    def epoch() -> int:
        seen = engine.train_epoch() * k
        if engine.graph_error and engine.graph_error not in notes:
            notes.append(engine.graph_error)
        return seen

    return epoch


# --------------------------------------------------------------------------- measuring


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rss_peak_mb() -> float:
    """Process RSS high-water mark (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def time_epochs(
    run: Callable[[], int], device: torch.device, warmup: int, epochs: int, min_seconds: float
) -> tuple[float, float]:
    """(samples/s, seconds timed): warm-up epochs first, then at least ``epochs`` and ``min_seconds``."""
    if device.type == "cuda":  # before the warm-up: it captures the CUDA graphs, whose pools count
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(warmup):
        run()
    sync(device)
    seen, n, t0 = 0, 0, time.perf_counter()
    while n < epochs or time.perf_counter() - t0 < min_seconds:
        seen += run()
        n += 1
    sync(device)
    seconds = time.perf_counter() - t0
    return seen / seconds, seconds


def matmul_ceiling(device: torch.device, dtype: torch.dtype, tf32: bool) -> float:
    """Achievable FLOP/s of a large square matmul on ``device`` (median of several)."""
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        times = []
        for i in range(8):
            sync(device)
            t0 = time.perf_counter()
            a @ b
            sync(device)
            if i >= 2:
                times.append(time.perf_counter() - t0)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    times.sort()
    return 2 * n**3 / times[len(times) // 2]


def useful_flops_per_sample(
    model: nn.Module, data: SequenceData, forward: Callable[[nn.Module, Tensor, Tensor], Tensor]
) -> float:
    """Forward + backward FLOPs per sample, counted on a full-length batch on CPU and scaled by
    mean length / max length (the work on valid steps only; these models are linear in T)."""
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    m = copy.deepcopy(model).cpu().train()
    b = 8
    t = data.x.shape[1]
    x = torch.randn(b, t, data.x.shape[2])
    lengths = torch.full((b,), t, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        forward(m, x, lengths).float().sum().backward()
    mean_len = float(data.lengths.float().mean())
    return counter.get_total_flops() / b * mean_len / t


@dataclass
class Row:
    workload: str
    loop: str
    samples_per_s: float
    seconds: float
    rss_mb: float
    cuda_mb: float | None
    flops_per_sample: float
    ceiling: float
    ratio: float = 1.0
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        return self.samples_per_s * self.flops_per_sample / self.ceiling if self.ceiling else float("nan")


def measure(
    workload: str,
    loop: str,
    run: Callable[[], int],
    device: torch.device,
    args: argparse.Namespace,
    flops: float,
    ceiling: float,
    warmup: int | None = None,
) -> Row:
    rate, seconds = time_epochs(run, device, args.warmup if warmup is None else warmup, args.epochs, args.min_seconds)
    cuda_mb = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    row = Row(workload, loop, rate, seconds, rss_peak_mb(), cuda_mb, flops, ceiling)
    print(f"  {workload:<24} {loop:<26} {rate:>12,.0f} samples/s", flush=True)
    return row


# --------------------------------------------------------------------------- workloads


def _reference_model(family: str, cfg: ExperimentConfig, meta: DataMeta, args: argparse.Namespace) -> nn.Module:
    if family == "gru":
        return SeedGRU(meta.channels, args.hidden, args.layers, meta.n_classes, 0.2)
    torch.manual_seed(0)
    return build_model(cfg.model, meta)


def family_rows(
    workload: str,
    data: SequenceData,
    family: str,
    overrides: dict[str, Any],
    args: argparse.Namespace,
    device: torch.device,
    ceiling: float,
    ks: list[int],
) -> list[Row]:
    """Reference, engine and pack rows of one family on one data set; ratios against the reference.

    With ``--rounds R`` > 1 every loop is timed R times, the loops interleaved, and each keeps its
    best rate: on a shared machine that filters out the other processes' interference."""
    cfg = engine_config(family, args.batch_size, 1e-3, overrides)
    from tunelab.pack import pack_models

    # counted on the stacked form (K = 1): its matmuls are all visible to the FLOP counter
    flops = useful_flops_per_sample(pack_models([build_model(cfg.model, data.meta)]), data, lambda m, x, n: m(x, n))
    loops: list[tuple[str, Callable[[], Callable[[], int]], list[str]]] = [
        (
            "seeds' loop (reference)",
            lambda: reference_runner(
                data, device, _reference_model(family, cfg, data.meta, args), args.batch_size, 1e-3
            ),
            [],
        ),
    ]
    notes: list[str] = []
    loops.append(("tunelab engine", lambda notes=notes: engine_runner(data, device, cfg, notes=notes), notes))
    if device.type == "cuda":  # the same step without CUDA graphs: what capture gains
        loops.append(("tunelab engine, eager", lambda: engine_runner(data, device, cfg, graphs=False), []))
    if family == "gru":
        bucketed = cfg.model_copy(update={"data": cfg.data.model_copy(update={"bucket": True})})
        loops.append(("tunelab engine, bucketed", lambda: engine_runner(data, device, bucketed), []))
        loops.append(("tunelab engine, fused layers (experiment)", lambda: engine_runner(data, device, cfg, True), []))
    for k in ks if args.pack else []:
        for variant in args.variants:
            notes: list[str] = []
            loops.append(
                (
                    f"pack K={k} {variant}",
                    lambda k=k, variant=variant, notes=notes: pack_runner(data, device, cfg, k, variant, notes),
                    notes,
                )
            )  # type: ignore[misc]
    best: dict[str, Row] = {}
    runners: dict[str, Callable[[], int]] = {}
    for round_ in range(args.rounds):
        for label, make, notes in loops:
            try:
                if label not in runners or args.rounds == 1:
                    runners[label] = make()
                warm = None if round_ == 0 or args.rounds == 1 else 0
                row = measure(workload, label, runners[label], device, args, flops, ceiling, warm)
            except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:  # out of memory at large K: say so, go on
                print(f"  {workload} {label}: {type(exc).__name__}: {str(exc)[:300]}", flush=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            finally:
                if args.rounds == 1:
                    runners.pop(label, None)  # free a large pack before the next one
            row.note = "; ".join(notes)
            if label not in best or row.samples_per_s > best[label].samples_per_s:
                best[label] = row
    rows = [best[label] for label, _, _ in loops if label in best]
    for r in rows:
        r.ratio = r.samples_per_s / rows[0].samples_per_s
    return rows


def gesture_rows(args: argparse.Namespace, device: torch.device, ceiling: float) -> list[Row]:
    data = gesture_like(args.samples or (800 if args.quick else 3200))
    rows = []
    for family in args.gesture_families:
        overrides = (
            {"hidden_dim": args.hidden, "num_layers": args.layers, "dropout": 0.2} if family in ("gru", "lstm") else {}
        )
        label = f"gesture-like {family}" + (f" {args.hidden}x{args.layers}" if family in ("gru", "lstm") else "")
        rows += family_rows(label, data, family, overrides, args, device, ceiling, args.k)
    return rows


def vowels_rows(args: argparse.Namespace, device: torch.device, ceiling: float) -> tuple[list[Row], str]:
    data, why = japanese_vowels()
    if data is None:
        return [], why
    from tunelab.registry import MODELS

    rows = []
    for family in args.families or MODELS.names():
        if data.meta.task not in getattr(MODELS.get(family).config, "tasks", ("classification", "regression")):
            continue
        try:
            rows += family_rows(f"JapaneseVowels {family}", data, family, {}, args, device, ceiling, [max(args.k)])
        except Exception as exc:  # noqa: BLE001  (a family that cannot run here is reported, not fatal)
            print(f"  {family}: {type(exc).__name__}: {str(exc)[:300]}", flush=True)
    return rows, ""


# --------------------------------------------------------------------------- accuracy check


def accuracy_check(args: argparse.Namespace, device: torch.device) -> str:
    """Train one K=8 GRU pack for a few epochs under each variant from the same start; compare
    per-epoch training losses with eager fp32 and report validation accuracy (TF32/bf16 safety)."""
    from dataclasses import dataclass as _dc

    from tunelab.pack import fit_pack

    @_dc
    class _Splits:
        train: SequenceData
        val: SequenceData
        test: SequenceData
        meta: DataMeta

    n = args.samples or 800  # training series; validation and test a quarter each
    full = gesture_like(n * 3 // 2, seed=1)
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(full), generator=g)
    val_end = n + n // 4
    splits = _Splits(full.subset(perm[:n]), full.subset(perm[n:val_end]), full.subset(perm[val_end:]), full.meta)
    base = engine_config(
        "gru", args.batch_size, 1e-3, {"hidden_dim": args.hidden, "num_layers": args.layers, "dropout": 0.0}
    )
    base = base.model_copy(
        update={
            "train": base.train.model_copy(
                update={
                    "max_epochs": args.check_epochs,
                    "early_stopping": base.train.early_stopping.model_copy(update={"patience": None}),
                }
            ),
            "device": str(device),
        }
    )
    lines = [
        "| variant | max rel. diff of per-epoch train loss vs eager fp32 | mean val acc | min val acc | seconds |",
        "|---|---:|---:|---:|---:|",
    ]
    ref: list[list[float]] | None = None
    steps_line = step_check(base, splits, device, args)
    variants = args.check_variants or (list(VARIANTS) if device.type == "cuda" else ["eager"])
    for variant in ["eager", *[v for v in variants if v != "eager"]]:
        opts = dict(VARIANTS[variant])
        amp = opts.pop("amp")
        t0 = time.perf_counter()
        results = fit_pack(pack_configs(base, 8, amp), splits, **opts)
        seconds = time.perf_counter() - t0
        losses = [[r.metrics["train_loss"] for r in res.history] for res in results]
        ref = ref or losses
        diff = max(abs(a - b) / abs(a) for la, lb in zip(ref, losses, strict=True) for a, b in zip(la, lb, strict=True))
        accs = [res.metrics["val_acc"] for res in results]
        lines.append(f"| {variant} | {diff:.2e} | {sum(accs) / len(accs):.4f} | {min(accs):.4f} | {seconds:.1f} |")
        print("  check", lines[-1], flush=True)
    return steps_line + "\n\n" + "\n".join(lines)


def step_check(base: ExperimentConfig, splits: Any, device: torch.device, args: argparse.Namespace) -> str:
    """Parameters after 4 optimizer steps from the same start, each variant against eager fp32:
    a wrong capture or fused kernel shows as a large difference; rounding as a tiny one."""
    from tunelab.pack.engine import PackEngine

    def params(variant: str) -> Tensor:
        opts = dict(VARIANTS[variant])
        amp = opts.pop("amp")
        engine = PackEngine(pack_configs(base, 8, amp), splits.meta, splits.train.to(device), device, **opts)
        engine.train_epoch(steps=4)
        return torch.cat([p.detach().flatten() for p in engine.model.parameters()])

    ref = params("eager")
    variants = [v for v in (args.check_variants or list(VARIANTS)) if v != "eager"] if device.type == "cuda" else []
    parts = [f"{v} {float((params(v) - ref).norm() / ref.norm()):.1e}" for v in variants]
    line = (
        "Relative difference of all parameters after 4 steps vs eager fp32: "
        + (", ".join(parts) or "(CPU: eager only)")
        + "."
    )
    print(" ", line, flush=True)
    return line


def profile_steps(args: argparse.Namespace, device: torch.device) -> str:
    """Top kernels of a few training steps: the engine (K=1, 10 steps) and the largest pack (compiled, no graphs, 3 steps)."""
    from torch.profiler import ProfilerActivity, profile

    from tunelab.pack.engine import PackEngine

    data = gesture_like(args.samples or 3200)
    cfg = engine_config(
        "gru", args.batch_size, 1e-3, {"hidden_dim": args.hidden, "num_layers": args.layers, "dropout": 0.2}
    )
    out = []
    runs: list[tuple[str, Callable[[], Any]]] = []
    solo = engine_runner(data.subset(torch.arange(min(10 * args.batch_size, len(data)))), device, cfg)
    runs.append(("engine K=1 (10 steps)", solo))
    k = max(args.k)
    engine = PackEngine(pack_configs(cfg, k), data.meta, data.to(device), device, tf32=True, compile=True, graphs=False)
    runs.append((f"pack K={k} tf32+compile, no graphs (3 steps)", lambda: engine.train_epoch(steps=3)))
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    for label, run in runs:
        run()
        sync(device)
        t0 = time.perf_counter()
        with profile(activities=activities) as prof:
            run()
            sync(device)
        wall = time.perf_counter() - t0
        key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
        try:
            table_text = prof.key_averages().table(sort_by=key, row_limit=14, max_name_column_width=60)
        except (AttributeError, KeyError, RuntimeError):
            table_text = prof.key_averages().table(
                sort_by="self_cuda_time_total", row_limit=14, max_name_column_width=60
            )
        out.append(f"### {label}: {wall * 1000:.0f} ms wall (profiled)\n\n```\n{table_text}\n```")
    return "\n\n".join(out)


# --------------------------------------------------------------------------- report


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__})"
    return f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads (torch {torch.__version__})"


def table(rows: list[Row], ceiling: float, ceiling_label: str) -> str:
    lines = [
        "| workload | loop | samples/s | ratio | RSS peak MB | CUDA peak MB | useful GFLOP/sample | % of matmul ceiling |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cuda = f"{r.cuda_mb:,.0f}" if r.cuda_mb is not None else "-"
        lines.append(
            f"| {r.workload} | {r.loop} | {r.samples_per_s:,.0f} | {r.ratio:.2f}x | {r.rss_mb:,.0f} | {cuda} | "
            f"{r.flops_per_sample / 1e9:.4f} | {100 * r.fraction:.2f}% |"
        )
    lines.append("")
    lines.append(f"Matmul ceiling: {ceiling / 1e12:.2f} TFLOP/s ({ceiling_label}).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small data, short timing: a couple of minutes on CPU")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda")
    parser.add_argument("--pack", action="store_true", help="add trial-pack rows (K sweep)")
    parser.add_argument(
        "--k", type=int, nargs="+", default=None, help="pack sizes (default 1 4 16 on CPU, 1 64 256 512 on CUDA)"
    )
    parser.add_argument("--families", nargs="*", default=None, help="JapaneseVowels families (default: all registered)")
    parser.add_argument(
        "--gesture-families",
        nargs="+",
        default=None,
        help="families on the gesture-like data (default gru; gru tcn transformer on CUDA)",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        default=None,
        choices=sorted(VARIANTS),
        help="pack variants (CUDA): eager fp32, tf32, graphs, compile, bf16",
    )
    parser.add_argument(
        "--check", action="store_true", help="also train a K=8 pack under each variant and compare losses/accuracy"
    )
    parser.add_argument("--check-epochs", type=int, default=3)
    parser.add_argument(
        "--profile", type=Path, default=None, help="write a kernel profile of the engine and a pack step here"
    )
    parser.add_argument(
        "--check-variants",
        nargs="+",
        default=None,
        choices=sorted(VARIANTS),
        help="variants of the accuracy check (default: all on CUDA)",
    )
    parser.add_argument("--skip-vowels", action="store_true", help="only the gesture-like workload")
    parser.add_argument("--skip-gesture", action="store_true", help="only the JapaneseVowels workload")
    parser.add_argument(
        "--samples", type=int, default=None, help="gesture-like training series (default 800 quick, 3200 full)"
    )
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=1, help="untimed epochs before timing")
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="time each loop this many times, interleaved, keep the best (default 3 on CPU, 1 on CUDA)",
    )
    parser.add_argument("--epochs", type=int, default=None, help="timed epochs per row (at least)")
    parser.add_argument("--min-seconds", type=float, default=None, help="timed seconds per row (at least)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    parser.add_argument("--no-write", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    args.epochs = args.epochs if args.epochs is not None else (1 if args.quick else 3)
    args.min_seconds = args.min_seconds if args.min_seconds is not None else (2.0 if args.quick else 5.0)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    cuda = device.type == "cuda"
    args.rounds = args.rounds or (1 if cuda else 3)
    if args.k is None:
        args.k = [1, 64, 256, 512] if cuda else [1, 4, 16]
    if args.gesture_families is None:
        args.gesture_families = ["gru", "tcn", "transformer"] if cuda and not args.quick else ["gru"]
    if args.variants is None:
        args.variants = ["eager", "graphs", "compile"] if cuda and not args.quick else ["eager"]
    torch.backends.cudnn.benchmark = False
    fp32 = torch.float32
    ceiling = matmul_ceiling(device, fp32, tf32=False)
    label = "fp32 (no TF32)" if device.type == "cuda" else "fp32"
    extra_ceilings = {}
    if device.type == "cuda":
        extra_ceilings["tf32"] = matmul_ceiling(device, fp32, tf32=True)
        extra_ceilings["bf16"] = matmul_ceiling(device, torch.bfloat16, tf32=False)
    print(f"device: {device_label(device)}; fp32 matmul ceiling {ceiling / 1e12:.2f} TFLOP/s", flush=True)

    rows = [] if args.skip_gesture else gesture_rows(args, device, ceiling)
    vowel_note = ""
    if not args.skip_vowels:
        vrows, vowel_note = vowels_rows(args, device, ceiling)
        rows += vrows
    text = table(rows, ceiling, label)
    if extra_ceilings:
        text += " Also measured: " + ", ".join(f"{k} {v / 1e12:.1f} TFLOP/s" for k, v in extra_ceilings.items()) + "."
    notes = [f"{r.workload} / {r.loop}: {r.note}" for r in rows if r.note]
    if notes:
        text += "\n\nNotes: " + "; ".join(notes) + "."
    if vowel_note:
        text += f"\n\nJapaneseVowels rows skipped: {vowel_note}."
    if args.check:
        text += "\n\nAccuracy check (K=8 GRU pack, gesture-like data, same start):\n\n" + accuracy_check(args, device)
    print()
    print(text)
    # the figures first: a profile that runs past its step's time limit must not lose them
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ | {"fraction": r.fraction} for r in rows], indent=1, default=str))
    if not args.no_write:
        cmd = "python " + " ".join(
            shlex.quote(a) for a in ["benchmarks/throughput.py", *(argv if argv is not None else sys.argv[1:])]
        )
        stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
        section = f"\n## Throughput, {stamp}, {device_label(device)}\n\n`{cmd}`\n\n{text}\n"
        with RESULTS.open("a") as fh:
            fh.write(section)
        print(f"\nappended to {RESULTS.relative_to(ROOT)}")
    if args.profile:
        args.profile.write_text(profile_steps(args, device))
        print(f"profile written to {args.profile}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
