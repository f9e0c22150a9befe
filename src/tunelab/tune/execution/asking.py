"""Asking a pack's batch of trials in one pass, without Optuna's quadratic cost.

``Study.ask`` on an RDB storage (SQLite, PostgreSQL) re-reads every RUNNING trial of the study
at each suggestion: Optuna's cache keeps finished trials only, since another process may change a
running one.  A batch's trials all stay RUNNING until its packs train, so asking ``k`` trials of
~8 parameters reads about ``8 k^2 / 2`` trials: 120 trials took 36 s on 2 CPU cores, 256 about
two minutes, most of a GPU study's budget (``benchmarks/ask.py``).

:class:`BatchAsker` draws the values in an in-memory copy of the study instead (the storage is
read once per batch; the trials asked so far are RUNNING there as they would be in the storage,
so TPE's constant liar sees them) and creates each real trial with its values in one write; the
objective's own suggestions then return those values.  Queued trials (``enqueue_trial``: the
portfolio's known-good starts), samplers that keep state in study or trial attributes (grid,
QMC, CMA-ES, NSGA-II, a user's own) and storages that read from memory (a journal file) go
through ``Study.ask`` as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState, create_trial

__all__ = ["BatchAsker"]

#: Samplers whose draws depend only on the trials' states, values and parameters (what the copy holds).
MIRRORED = (optuna.samplers.TPESampler, optuna.samplers.RandomSampler)
#: The copy creates empty studies up to the study's id (~10 µs each): beyond this id, Study.ask.
MAX_STUDY_ID = 100_000


class BatchAsker:
    """``ask()`` a new RUNNING trial of ``study`` whose parameters ``suggest(trial)`` has drawn."""

    def __init__(self, study: optuna.Study, suggest: Callable[[optuna.Trial], Any]) -> None:
        self.study, self.suggest = study, suggest
        trials = study.get_trials(deepcopy=False)  # the one read of the batch
        self.waiting = sum(t.state == TrialState.WAITING for t in trials)
        rdb = isinstance(getattr(study._storage, "_backend", study._storage), optuna.storages.RDBStorage)
        # exact types; a journal file or memory storage reads from memory already: nothing to gain;
        # the copy numbers its studies up to the study's id (a database of very many studies: ask)
        mirror = rdb and type(study.sampler) in MIRRORED and study._study_id <= MAX_STUDY_ID
        self.mirror = _mirror(study, trials) if mirror else None

    @property
    def mirrored(self) -> bool:
        """Whether new trials are drawn in the in-memory copy (else ``Study.ask``)."""
        return self.mirror is not None

    def ask(self) -> optuna.Trial:
        if self.mirror is None or self.waiting > 0:
            self.waiting = max(0, self.waiting - 1)
            return self.study.ask()
        shadow = self.mirror.ask()
        self.suggest(shadow)  # stays RUNNING in the copy: the next draws see it
        template = create_trial(state=TrialState.RUNNING, params=shadow.params, distributions=shadow.distributions)
        # Study.ask's own two steps (Optuna 3-5): create the trial in the storage, wrap it
        trial_id = self.study._storage.create_new_trial(self.study._study_id, template_trial=template)
        return optuna.Trial(self.study, trial_id)


def _mirror(study: optuna.Study, trials: list[FrozenTrial]) -> optuna.Study:
    """An in-memory study with ``study``'s id, name, sampler, pruner and trials, numbered as in
    ``study`` (with Hyperband, TPE draws from the trials of the new trial's bracket).

    The sampler is the study's own object, so its random state goes on from one batch to the
    next.  TPE keeps an incremental search-space cache tied to the study id and to the trial
    numbers below the first unfinished one; those are the same here (queued trials are copied as
    RUNNING, without parameters), so the cache stays right for the real study afterwards."""
    storage = optuna.storages.InMemoryStorage()
    for i in range(study._study_id):  # ids count from 0
        storage.create_new_study(study.directions, f"\0{i}")
    storage.create_new_study(study.directions, study.study_name)  # Hyperband's brackets hash the name
    mirror = optuna.load_study(study_name=study.study_name, storage=storage, sampler=study.sampler, pruner=study.pruner)
    assert mirror._study_id == study._study_id
    mirror.add_trials(_bare(t) for t in trials)
    return mirror


def _bare(t: FrozenTrial) -> FrozenTrial:
    """``t`` as the sampler sees it: no user attributes (configs, paths); queued trials RUNNING."""
    if not t.state.is_finished():
        return create_trial(
            state=TrialState.RUNNING, params=t.params, distributions=t.distributions, system_attrs=t.system_attrs
        )
    return create_trial(
        state=t.state,
        values=t.values,
        params=t.params,
        distributions=t.distributions,
        system_attrs=t.system_attrs,
        intermediate_values=t.intermediate_values,
    )
