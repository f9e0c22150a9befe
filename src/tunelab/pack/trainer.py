"""Train a pack: K configs that share a pack key, one stacked computation, K results.

:func:`fit_pack` is :func:`tunelab.train.fit` for a list of configs: the same loop
(:mod:`tunelab.train.loop`) and per-trial bookkeeping, with a stacked engine.  Each member gets its own
initial weights (built from its own seed, exactly as its solo run would), its own value
hyperparameters, early stopping, callbacks, history and :class:`~tunelab.train.RunResult`.
What members share: the data, the batch order and the augmentation random stream — all taken
from the **first** member's seed — and the dropout random stream.  So a member trained in a pack
with dropout off equals its solo run when it has the first member's seed.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from tunelab.config import ExperimentConfig, pack_key
from tunelab.data.base import DataMeta
from tunelab.models import build_model
from tunelab.pack.engine import PackEngine
from tunelab.pack.model import NotPackable, pack_models
from tunelab.train.callbacks import Callback
from tunelab.train.device import resolve_device
from tunelab.train.engine import Engine
from tunelab.train.loop import fit_engine
from tunelab.train.member import PACK_FLUSH_SECONDS
from tunelab.train.result import RunResult

__all__ = ["fit_pack", "make_engine", "pack_group_key", "packable"]

#: Value fields that a family reads from its config inside ``forward`` (not through a layer), so
#: members of one pack must agree on them.
_SHARED_MODEL_VALUES: dict[str, tuple[str, ...]] = {"bilstm_enhanced": ("feature_dropout", "temporal_dropout")}


def pack_group_key(cfg: ExperimentConfig) -> tuple[Any, ...]:
    """Configs with equal keys can train together in one pack.

    The pack key (family and shape parameters) plus what a pack shares: the data section (but
    augmentation strengths, which may differ), device, steps per epoch, gradient accumulation,
    mixed precision, SGD versus Adam/AdamW, early-stopping monitor, and value fields that the
    family reads outside its layers.
    """
    data = cfg.data.model_dump(mode="json")
    data.pop("augment")
    tc = cfg.train
    shared = tuple((name, getattr(cfg.model, name)) for name in _SHARED_MODEL_VALUES.get(cfg.model.name, ()))
    return (
        pack_key(cfg),
        repr(sorted(data.items())),
        cfg.device,
        tc.steps_per_epoch,
        tc.grad_accum,
        tc.amp,
        tc.optimizer == "sgd",
        tc.early_stopping.monitor,
        shared,
    )


def packable(cfg: ExperimentConfig, meta: DataMeta) -> bool:
    """True when ``cfg``'s model has a stacked form (else it trains one at a time)."""
    try:
        model = build_model(cfg.model, meta)
        pack_models([model, copy.deepcopy(model)])
    except NotPackable:
        return False
    return True


def fit_pack(
    cfgs: Sequence[ExperimentConfig],
    data: Any,
    callbacks_per_member: Sequence[Sequence[Callback]] | None = None,
    *,
    run_dirs: Sequence[str | Path | None] | None = None,
    compact_below: float = 0.5,
    graphs: bool = True,
    compile: bool = False,
    tf32: bool = False,
    on_result: Callable[[int, RunResult], None] | None = None,
) -> list[RunResult]:
    """Train K configs that share :func:`pack_group_key` as one pack; one ``RunResult`` each.

    ``data`` is the prepared ``Splits`` (``tunelab.data.prepare(cfgs[0].data, cfgs[0].seed)``):
    every member trains on it, in the batch order and augmentation stream of the first member's
    seed.  ``callbacks_per_member[k]`` observe member k (its ``EpochReport`` carries ``member=k``)
    and may stop it alone: ``StopTraining`` ends it like early stopping; any other exception
    (an Optuna pruning callback's ``TrialPruned``) ends it with ``stop_reason`` "pruned" and the
    exception in ``result.extra["exception"]`` for the caller to re-raise in that member's trial.
    A member whose loss is not finite ends with "diverged" and a ``Diverged`` there.  Stopped
    members are masked out; when fewer than ``compact_below`` of the pack's slots are still
    training, the pack is compacted to the live members.  ``run_dirs[k]`` (optional) gets member
    k's config, metrics.jsonl, best checkpoint and summary, as a solo run's directory.
    ``on_result(k, result)`` is called when member k finishes, its directory complete, while the
    others may still train (a study tells its trial there).

    A pack of one is the ordinary run (:func:`make_engine`): ``fit_pack([cfg])`` and ``fit(cfg)``
    train the same model through the same loop.  Results come in the order of ``cfgs``; each one's ``model`` is an ordinary single model with
    the member's best weights and ``metrics`` are computed exactly as ``fit`` computes them.
    ``ctx.model`` in a callback is that single model, but it holds the initial weights until the
    member finishes (the live weights are inside the pack).

    On CUDA, ``graphs`` captures each training step in a CUDA graph (per length bucket),
    ``compile`` fuses recurrent gate arithmetic with ``torch.compile``, and ``tf32`` allows TF32
    matmuls (all three leave CPU runs untouched; see :class:`~tunelab.pack.engine.PackEngine`).
    """
    if not cfgs:
        return []
    keys = {pack_group_key(c) for c in cfgs}
    if len(keys) > 1:
        raise ValueError(
            "fit_pack: the configs do not share a pack group key (family, shapes, data, optimizer kind, ...); group them with pack_group_key"
        )
    k_total = len(cfgs)
    callbacks_per_member = callbacks_per_member or [()] * k_total
    run_dirs = run_dirs or [None] * k_total
    if len(callbacks_per_member) != k_total or len(run_dirs) != k_total:
        raise ValueError("fit_pack: one callbacks list and one run_dir per config")

    t_start = time.perf_counter()
    device = resolve_device(cfgs[0].device)
    train, val, test = (s.to(device) for s in (data.train, data.val, data.test))
    engine = make_engine(cfgs, data.meta, train, device, graphs=graphs, compile=compile, tf32=tf32)
    infos = [{"pack_member": i, "pack_size": k_total} for i in range(k_total)]
    return fit_engine(
        engine,
        (train, val, test),
        callbacks_per_member,
        run_dirs,
        infos,
        flush_seconds=PACK_FLUSH_SECONDS,
        compact_below=compact_below,
        t_start=t_start,
        on_result=on_result,
    )


def make_engine(
    cfgs: Sequence[ExperimentConfig], meta: DataMeta, train: Any, device: torch.device, **options: Any
) -> Engine:
    """The engine for ``cfgs``: one trial trains its ordinary model (cuDNN's fused GRU/LSTM, torch's
    optimizer: :class:`~tunelab.train.engine.Engine`), more than one as a stacked :class:`PackEngine`.
    ``options``: ``graphs`` (both), ``compile`` and ``tf32`` (stacked only)."""
    if len(cfgs) == 1:
        return Engine(cfgs, meta, train, device, graphs=options.get("graphs", True))
    return PackEngine(cfgs, meta, train, device, **options)
