"""``fit``: train one config through the one loop (a pack of one), get the best weights and
their metrics.  The loop is :mod:`tunelab.train.loop`, the step :class:`~tunelab.train.engine.Engine`,
a trial's bookkeeping :class:`~tunelab.train.member.Member`; a pack of K
(:func:`tunelab.pack.fit_pack`) runs the same loop with a stacked engine."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from tunelab.config import ExperimentConfig
from tunelab.train.callbacks import Callback
from tunelab.train.device import resolve_device, seed_everything
from tunelab.train.engine import Engine
from tunelab.train.loop import fit_engine
from tunelab.train.result import RunResult, evaluate, final_metrics, monitor_mode, predict

__all__ = ["RunResult", "evaluate", "final_metrics", "fit", "monitor_mode", "predict"]

log = logging.getLogger(__name__)


def fit(
    cfg: ExperimentConfig,
    *,
    data: Any | None = None,
    callbacks: Sequence[Callback] = (),
    run_dir: str | Path | None = None,
) -> RunResult:
    """Train ``cfg`` and return the best weights and their metrics.

    ``data`` is a prepared ``Splits`` (from ``tunelab.data.prepare``); by default it is prepared
    from ``cfg.data``.  ``callbacks`` observe each epoch and may stop training.  With ``run_dir``,
    the run's config, per-epoch metrics, best checkpoint and summary are written there.  A
    diverged run raises :class:`~tunelab.train.Diverged`; a callback's exception (a pruner's)
    propagates.
    """
    device = resolve_device(cfg.device)
    try:
        return _fit(cfg, data, callbacks, run_dir, device)
    except NotImplementedError as exc:
        if device.type != "mps":
            raise
        log.warning("an operation is missing on MPS (%s); training on cpu instead", exc)
        return _fit(cfg, data, callbacks, run_dir, torch.device("cpu"))


def _fit(
    cfg: ExperimentConfig, data: Any, callbacks: Sequence[Callback], run_dir: str | Path | None, device: torch.device
) -> RunResult:
    from tunelab.data import prepare

    t_start = time.perf_counter()
    seed_everything(cfg.seed)
    splits = data if data is not None else prepare(cfg.data, cfg.seed)
    train, val, test = (s.to(device) for s in (splits.train, splits.val, splits.test))
    engine = Engine([cfg], splits.meta, train, device)
    (result,) = fit_engine(engine, (train, val, test), [callbacks], [run_dir], [{}], t_start=t_start)
    failure = result.extra.pop("exception", None)
    if failure is not None:
        raise failure
    result.seconds = time.perf_counter() - t_start
    return result
