"""Run a study's trials in packs: ask Optuna for several trials, train those that share a pack key
as one stacked computation (:func:`tunelab.pack.fit_pack`), tell each trial its own outcome.

Each member reports to its own trial every epoch, so the pruner stops members alone; a finished
member records exactly what a solo trial records (attributes, run directory, checkpoint) and is
told as soon as it finishes, while the rest of its pack trains; an interrupted pack marks every
unfinished member FAIL with reason "interrupted" before the interrupt propagates.  Trials that share no pack key with another asked trial train alone, through
the ordinary objective.  ``--pack-size auto`` asks for as many trials as the device has room for
(measured per member); on CPU it is 1, the ordinary path.

The groups of one batch share the study's time like queued trials do
(:mod:`tunelab.tune.execution.deadline`): a group that starts while ``n`` others of its batch wait
stops at its epoch end past ``1/(n+1)`` of the time left, so a short budget trains every group
instead of spending it all on the first.  A group still waiting when the study's time is up is not
trained: its trials end PRUNED with reason "not started: study timeout".
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tunelab.errors import UserError
from tunelab.results.attrs import TRIAL
from tunelab.tune.execution.asking import BatchAsker
from tunelab.tune.execution.objective import Objective, TrialFailed, TrialRun, _free_memory
from tunelab.tune.execution.signals import held
from tunelab.tune.reporting.reads import SharedReads

if TYPE_CHECKING:
    from tunelab.train.result import RunResult

__all__ = [
    "AUTO_CAP",
    "NOT_STARTED",
    "Pending",
    "default_pack_size",
    "members_that_fit",
    "parse_pack_size",
    "resolve_pack_size",
    "run_packs",
]

log = logging.getLogger(__name__)

#: The most trials ``--pack-size auto`` asks for at once (the measured GRU speed-up flattens by here).
AUTO_CAP = 256
#: The reason of a trial asked in a batch whose group never started before the study's time ran out.
NOT_STARTED = "not started: study timeout"


class Pending:
    """How many groups of the running batch wait to start (they share the time left, as queued
    trials do: the study's :class:`~tunelab.tune.execution.deadline.StudyDeadline` counts them)."""

    def __init__(self) -> None:
        self.groups = 0


#: Share of free device memory a pack may plan to use; processes sharing one GPU (several studies at
#: once) each take a part of it with ``TUNELAB_MEMORY_SHARE`` (e.g. 0.07 for ten).
MEMORY_SHARE = 0.7


def memory_share() -> float:
    """:data:`MEMORY_SHARE`, or ``TUNELAB_MEMORY_SHARE`` when set (a number in (0, 1])."""
    raw = os.environ.get("TUNELAB_MEMORY_SHARE")
    if raw is None:
        return MEMORY_SHARE
    try:
        share = float(raw)
    except ValueError:
        share = -1.0
    if not 0 < share <= 1:
        raise UserError(
            f"TUNELAB_MEMORY_SHARE={raw}: use a number above 0 and at most 1 (the share of free GPU memory a pack may use)"
        )
    return share


def parse_pack_size(value: str | int | None) -> int | str:
    """``auto`` or a positive integer; anything else is a one-line error."""
    if value is None:
        return 1
    if isinstance(value, int) or str(value).strip().isdigit():
        n = int(value)
        if n >= 1:
            return n
    elif str(value).strip().lower() == "auto":
        return "auto"
    raise UserError(f"--pack-size {value}: use auto or a whole number >= 1")


def default_pack_size(device: str, workers: int) -> int | str:
    """The pack size of a study that names none: ``auto`` when it trains on a CUDA device in one
    process (small sequence models leave a GPU mostly idle), else 1 (a CPU gains nothing from
    stacking, and worker processes already share the device)."""
    from tunelab.train.device import resolve_device

    return "auto" if workers == 1 and resolve_device(device).type == "cuda" else 1


def members_that_fit(free_bytes: int, per_member_bytes: int, cap: int = AUTO_CAP) -> int:
    """How many members of a measured cost fit in a share of the free device memory (1..cap)."""
    if per_member_bytes <= 0:
        return cap
    return max(1, min(cap, int(free_bytes * memory_share() // per_member_bytes)))


def resolve_pack_size(pack_size: int | str, device: str) -> int:
    """How many trials to ask for at once: the number given, or for ``auto`` 1 on CPU and
    :data:`AUTO_CAP` on CUDA (each pack is then cut to what memory holds, see :func:`_measured_fit`)."""
    if pack_size != "auto":
        return int(pack_size)
    from tunelab.train.device import resolve_device

    return AUTO_CAP if resolve_device(device).type == "cuda" else 1


def _measured_fit(cfg: Any, data: Any) -> int:
    """Members of ``cfg``'s shape that fit on its CUDA device: a two-member probe measures the cost."""
    import torch

    from tunelab.pack.engine import PackEngine
    from tunelab.train.device import resolve_device

    device = resolve_device(cfg.device)
    if device.type != "cuda":
        return AUTO_CAP
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    engine = PackEngine([cfg, cfg], data.meta, data.train.to(device), device, graphs=False)
    engine.train_epoch(steps=2)
    torch.cuda.synchronize(device)
    per_member = (torch.cuda.max_memory_allocated(device) - base) // 2
    del engine
    _free_memory()
    free, _ = torch.cuda.mem_get_info(device)
    return members_that_fit(free, int(per_member))


def _room(cfg: Any, data: Any) -> int:
    """Members per pack for ``cfg``'s shape: what the probe measures, at least 2; 1 (its trials
    train alone) when the probe itself fails, e.g. out of memory while other processes share the
    device: that must cost the pack's speed, not the study."""
    try:
        return max(2, _measured_fit(cfg, data))
    except Exception as exc:  # noqa: BLE001  (interrupts propagate)
        _free_memory()
        log.warning(
            "measuring a pack of %s failed (%s); its trials train alone", cfg.model.name, str(exc).splitlines()[0][:200]
        )
        return 1


def _groups(runs: Sequence[tuple[optuna.Trial, TrialRun]], data_of: Callable[[Any], Any]) -> list[list[int]]:
    """Indices of ``runs`` grouped by pack key, in first-seen order; unpackable configs alone.

    Whether a key packs is checked once per key (it builds the model twice), not once per trial."""
    from tunelab.pack import pack_group_key, packable

    groups: dict[Any, list[int]] = {}
    can_pack: dict[Any, bool] = {}
    alone: list[list[int]] = []
    for i, (_, run) in enumerate(runs):
        key = pack_group_key(run.cfg)
        if key not in can_pack:
            try:
                can_pack[key] = packable(run.cfg, data_of(run.cfg).meta)
            except Exception:  # noqa: BLE001  (a config that cannot build fails in its own solo trial)
                can_pack[key] = False
        if can_pack[key]:
            groups.setdefault(key, []).append(i)
        else:
            alone.append([i])
    return [*groups.values(), *alone]


After = Callable[[optuna.Study, list[FrozenTrial]], bool]
"""Called with the trials told together (a pack, or one solo trial); returns True to stop the study."""


def run_packs(
    study: optuna.Study,
    objective: Objective,
    pack_size: int | str,
    n_trials: int | None,
    timeout: float | None,
    after: After,
    device: str = "auto",
    pending: Pending | None = None,
) -> None:
    """Ask, pack, train and tell until ``n_trials`` are done, ``timeout`` passes or ``after`` says
    stop; ``pending`` is kept up to date with the batch's groups still to start."""
    ask_n = resolve_pack_size(pack_size, device)
    memory_share()  # a bad TUNELAB_MEMORY_SHARE stops the study here, before any trial
    t_start = time.monotonic()

    def expired() -> bool:
        return timeout is not None and time.monotonic() - t_start >= timeout

    done = 0
    while n_trials is None or done < n_trials:
        if expired():
            break
        k = ask_n if n_trials is None else min(ask_n, n_trials - done)
        if _run_batch(study, objective, k, after, expired, pending or Pending()):
            break
        done += k


class _Batch:
    """The trials asked together, and which of them are told.

    ``after`` runs once per :meth:`flush` on the trials told since the last one: a pack's members
    are all told first, so the study files are rewritten once per pack, and while no member of it
    is still running (a read of running trials goes to the storage each time)."""

    def __init__(self, study: optuna.Study, after: After) -> None:
        self.study, self.after = study, after
        self.open: dict[int, optuna.Trial] = {}
        self.told: list[FrozenTrial] = []
        self.stop = False

    def tell(self, trial: optuna.Trial, values: Any = None, state: TrialState | None = None) -> None:
        with held():  # an interrupt waits: told and no longer open, or neither
            self.told.append(self.study.tell(trial, values, state=state))
            self.open.pop(trial.number, None)

    def flush(self) -> None:
        told, self.told = self.told, []
        if told:
            self.stop = self.after(self.study, told) or self.stop

    def fail_open(self) -> None:
        """Nothing stays RUNNING: trials not told yet (an interrupt, a study-stopping error) are FAIL."""
        for trial in list(self.open.values()):
            if TRIAL.REASON not in trial.user_attrs:
                trial.set_user_attr(TRIAL.REASON, "interrupted")
            self.study.tell(trial, state=TrialState.FAIL)
            self.open.pop(trial.number, None)


def _run_batch(
    study: optuna.Study, objective: Objective, k: int, after: After, expired: Callable[[], bool], pending: Pending
) -> bool:
    """Ask ``k`` trials, train them in packs, tell each; True when ``after`` asked to stop."""
    batch = _Batch(study, after)
    begun: list[tuple[optuna.Trial, TrialRun]] = []
    try:
        asker = BatchAsker(study, objective.space.suggest)
        for _ in range(k):
            if expired():  # a slow ask (a large batch, a shared storage) must not eat the budget
                break
            with warnings.catch_warnings(), held():  # an interrupt waits until the asked trial is open
                # Optuna's RDB heartbeat runs in optimize() only; owners.claim covers kills
                warnings.filterwarnings("ignore", message="Heartbeat of storage")
                trial = asker.ask()
                batch.open[trial.number] = trial
            try:
                begun.append((trial, objective.begin(trial)))
            except TrialFailed:
                batch.tell(trial, state=TrialState.FAIL)
        batch.flush()
        groups = _groups(begun, objective.data.get)
        for i, group in enumerate(groups):
            members = [begun[j] for j in group]
            pending.groups = len(groups) - i - 1
            if expired():
                for trial, _ in members:
                    trial.set_user_attr(TRIAL.REASON, NOT_STARTED)
                    batch.tell(trial, state=TrialState.PRUNED)
            elif len(members) == 1:
                _solo(batch, objective, *members[0])
            else:
                _pack(batch, objective, members)
            batch.flush()
    except BaseException:
        batch.fail_open()
        raise
    finally:
        pending.groups = 0
    return batch.stop


def _tell_outcome(
    batch: _Batch,
    objective: Objective,
    trial: optuna.Trial,
    run: TrialRun,
    result: Any,
    exc: BaseException | None,
    free: bool = True,
) -> None:
    """Record and tell one trial; interrupts and ``UserError`` propagate after the trial is told."""
    trial.set_user_attr(TRIAL.SECONDS, time.perf_counter() - run.t0)
    try:
        if exc is not None:
            objective.fail(trial, run, exc)
        values = objective.complete(trial, result, free=free)
    except optuna.TrialPruned:
        batch.tell(trial, state=TrialState.PRUNED)
    except TrialFailed:
        batch.tell(trial, state=TrialState.FAIL)
    except BaseException:
        batch.tell(trial, state=TrialState.FAIL)
        raise
    else:
        batch.tell(trial, values)


def _solo(batch: _Batch, objective: Objective, trial: optuna.Trial, run: TrialRun) -> None:
    result, error = None, None
    try:
        result = objective.train(trial, run)
    except BaseException as exc:  # noqa: BLE001  (told as the trial's outcome)
        error = exc
    _tell_outcome(batch, objective, trial, run, result, error)


def _pack(batch: _Batch, objective: Objective, members: list[tuple[optuna.Trial, TrialRun]]) -> None:
    data = objective.data.get(members[0][1].cfg)
    size = _room(members[0][1].cfg, data) if len(members) > 2 else len(members)
    for start in range(0, len(members), size):
        chunk = members[start : start + size]
        if len(chunk) == 1:
            _solo(batch, objective, *chunk[0])
            continue
        _train_chunk(batch, objective, chunk, data)
        _free_memory()  # once per pack, not per member: a full gc.collect() costs ~0.3 s
        batch.flush()


def _train_chunk(batch: _Batch, objective: Objective, chunk: list[tuple[optuna.Trial, TrialRun]], data: Any) -> None:
    """Train ``chunk`` as one pack.  Each member is told as soon as it finishes, its checkpoint
    written and its context (heartbeat, tracker run) closed, as a solo trial is: a kill while
    the others train loses no finished member.  Members still training when the pack fails (an
    interrupt, an error of the whole pack) are told that failure."""
    from tunelab.pack import fit_pack

    log.info("pack of %d trials: %s", len(chunk), ", ".join(str(t.number) for t, _ in chunk))
    told: set[int] = set()
    error: BaseException | None = None
    try:
        with ExitStack() as stack:
            contexts = [stack.enter_context(ExitStack()) for _ in chunk]
            per_member = []
            reads = SharedReads(batch.study)
            for (trial, run), context in zip(chunk, contexts, strict=True):
                run.follow.pruning = reads
                extra = context.enter_context(objective.context(trial, run.params))
                per_member.append(objective.fit_callbacks(run, extra))

            def finished(i: int, result: RunResult) -> None:
                contexts[i].close()
                told.add(i)
                _tell_member(batch, objective, chunk[i], len(chunk), result.extra.pop("exception", None), result)

            fit_pack(
                [run.cfg for _, run in chunk],
                data,
                per_member,
                run_dirs=[run.run_dir for _, run in chunk],
                on_result=finished,
            )
    except BaseException as exc:  # noqa: BLE001  (the pack failed: each member still training is told)
        error = exc
    for i, member in enumerate(chunk):
        if i not in told:
            _tell_member(batch, objective, member, len(chunk), error, None)


def _tell_member(
    batch: _Batch,
    objective: Objective,
    member: tuple[optuna.Trial, TrialRun],
    pack_size: int,
    exc: BaseException | None,
    result: RunResult | None,
) -> None:
    trial, run = member
    trial.set_user_attr(TRIAL.PACK_SIZE, pack_size)
    _tell_outcome(batch, objective, trial, run, None if exc is not None else result, exc, free=False)
