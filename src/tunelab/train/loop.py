"""The one training loop: epochs of an :class:`~tunelab.train.engine.Engine` (one trial, or a
stacked pack of K), each member's epoch recorded by its :class:`~tunelab.train.member.Member`.

Members stop alone (early stopping, their own max_epochs, a callback, divergence): a stopped
member is masked out of the step (learning rate 0), its best weights, kept on the device all
along, are handed to it once, and its result is made there and then (its checkpoint written), so
a caller can record a finished member while the others train.  Members that stop in the same
epoch are evaluated together where the engine can (:meth:`~tunelab.train.engine.Engine.final_outputs`).
When fewer than ``compact_below`` of the slots are still training, the engine is compacted to the
live members.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from tunelab.config import ExperimentConfig
from tunelab.train.callbacks import Callback
from tunelab.train.engine import Engine
from tunelab.train.member import Member
from tunelab.train.result import RunResult

__all__ = ["fit_engine"]

log = logging.getLogger(__name__)


def fit_engine(
    engine: Engine,
    splits: tuple[Any, Any, Any],
    callbacks: Sequence[Sequence[Callback]],
    run_dirs: Sequence[str | Path | None],
    infos: Sequence[dict[str, Any]],
    *,
    flush_seconds: float = 0.0,
    compact_below: float = 0.5,
    t_start: float | None = None,
    on_result: Callable[[int, RunResult], None] | None = None,
) -> list[RunResult]:
    """Train ``engine``'s members to their ends; one ``RunResult`` per member, in order.

    ``splits`` are the (train, val, test) data on the engine's device; member k gets
    ``callbacks[k]``, ``run_dirs[k]`` (written as a solo run's directory; metrics lines buffered
    for ``flush_seconds``) and ``infos[k]`` (its ``FitContext.info`` and ``result.extra``).  A
    member that failed (diverged, pruned, a callback's error) has the exception in
    ``result.extra["exception"]``.  ``on_result(k, result)`` is called as soon as member k has
    finished, its run directory complete, while the others may still train."""
    t_start = time.perf_counter() if t_start is None else t_start
    train, val, test = splits
    cfgs: list[ExperimentConfig] = engine.cfgs
    members = [
        Member.start(
            i, cfg, callbacks[i], run_dirs[i], engine.member_model(i), engine.meta, dict(infos[i]), flush_seconds
        )
        for i, cfg in enumerate(cfgs)
    ]
    results: dict[int, RunResult] = {}

    def finish(i: int, predicted: tuple[Tensor, Tensor] | None) -> None:
        results[i] = members[i].result(val, test, train.y, predicted)
        if on_result is not None:
            on_result(i, results[i])

    _train(engine, members, (val, test), compact_below, t_start, finish)
    return [results[i] for i in range(len(members))]


def _due(live: Sequence[Member]) -> float | None:
    """When every live member is due to stop (its time share or the study's deadline,
    ``FitContext.stop_at``): the epoch is cut there, so a slow epoch (long series on a CPU) does
    not run past the budget; its end is then evaluated as usual and the deadline stops them.
    None when a member has no such time."""
    stops = [m.ctx.stop_at for m in live]
    return None if not stops or any(s is None for s in stops) else max(s for s in stops if s is not None)


def _train(
    engine: Engine,
    members: list[Member],
    evaluation: tuple[Any, Any],
    compact_below: float,
    t_start: float,
    finish: Callable[[int, tuple[Tensor, Tensor] | None], None],
) -> None:
    """Epochs until every member has stopped; ``finish(i, predicted)`` for each member once it has
    (``predicted``: its kept model's val and test outputs, when the engine ran the members that
    stopped together at once)."""
    val, test = evaluation
    slots = list(range(len(members)))  # slot s of the engine holds member slots[s]
    handed: set[int] = set()  # members whose best weights were handed over
    for epoch in range(1, max(m.cfg.train.max_epochs for m in members) + 1):
        t0 = time.perf_counter()
        engine.train_epoch(until=_due([members[i] for i in slots if i not in handed]))
        rows = engine.epoch_metrics(val)
        seconds = time.perf_counter() - t0
        improved = []
        for s, i in enumerate(slots):
            m = members[i]
            if m.stop_reason is not None:
                continue
            metrics = rows[s] | {"seconds": seconds}
            if m.end_epoch(epoch, metrics):
                improved.append(s)
            if m.stop_reason != "diverged":
                engine.on_epoch_end(s, metrics["val_loss"], m.steps_left(seconds, engine.steps_per_epoch))
        engine.keep_best(improved)
        stopped = [s for s, i in enumerate(slots) if members[i].stop_reason is not None and i not in handed]
        kept = {}  # members that end with final metrics: their models with the best weights
        for s in stopped:
            m = members[slots[s]]
            model = m.keep(engine.best_state(s))
            m.seconds = time.perf_counter() - t_start
            handed.add(slots[s])
            if m.exception is None:
                kept[slots[s]] = model
        if stopped:
            engine.live[torch.tensor(stopped, device=engine.device)] = False
        outputs = engine.final_outputs(list(kept.values()), val, test) if kept else None
        predicted = dict(zip(kept, outputs, strict=True)) if outputs is not None else {}
        for s in stopped:
            finish(slots[s], predicted.get(slots[s]))
        live = [s for s, i in enumerate(slots) if i not in handed]
        if not live:
            break
        if len(live) < compact_below * len(slots):
            engine.select_(live)
            slots = [slots[s] for s in live]
            log.debug("pack compacted to %d members", len(slots))
