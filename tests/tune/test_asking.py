"""A pack's batch is asked in one pass: the same draws as ``Study.ask``, read from the storage once."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from tunelab.tune.execution.asking import BatchAsker

optuna.logging.set_verbosity(optuna.logging.WARNING)


def suggest(trial: optuna.Trial) -> dict[str, Any]:
    """A conditional space like a portfolio's: the family decides which parameters exist."""
    family = trial.suggest_categorical("family", ["gru", "cnn"])
    out: dict[str, Any] = {"family": family, "lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True)}
    if family == "gru":
        out["hidden"] = trial.suggest_int("hidden", 16, 128)
    else:
        out["kernel"] = trial.suggest_categorical("kernel", [3, 5, 7])
    return out


def sqlite_study(
    path: Path, sampler: optuna.samplers.BaseSampler, name: str = "s", pruner: optuna.pruners.BasePruner | None = None
) -> optuna.Study:
    storage = f"sqlite:///{path}"
    optuna.create_study(storage=storage, study_name="another", direction="minimize")  # the study's id is not 0
    return optuna.create_study(storage=storage, study_name=name, sampler=sampler, pruner=pruner, direction="maximize")


def finished(study: optuna.Study, n: int) -> None:
    for i in range(n):
        trial = study.ask()
        suggest(trial)
        trial.report(0.1 * i, step=1)
        trial.should_prune()  # a Hyperband pruner sets its brackets up at its first call
        study.tell(trial, float(i % 3) if i % 4 else None, state=TrialState.COMPLETE if i % 4 else TrialState.PRUNED)


def test_a_batch_draws_what_study_ask_would_and_the_storage_holds_it(tmp_path: Path) -> None:
    draws = {}
    for how in ("ask", "batch"):
        sampler = optuna.samplers.TPESampler(
            seed=3, n_startup_trials=4, constant_liar=True, multivariate=True, group=True
        )
        # Hyperband: TPE draws from the new trial's bracket, a hash of the study name and the trial number
        study = sqlite_study(tmp_path / f"{how}.db", sampler, pruner=optuna.pruners.HyperbandPruner(max_resource=27))
        finished(study, 24)  # past TPE's start-up: the draws depend on the history and on the running trials
        asker = BatchAsker(study, suggest)
        assert asker.mirrored
        trials = [study.ask() if how == "ask" else asker.ask() for _ in range(6)]
        draws[how] = [suggest(t) for t in trials]
        stored = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        assert [t.number for t in stored] == [t.number for t in trials] == list(range(24, 30))
        assert [t.params for t in stored] == draws[how]  # written with the trial, before any suggestion
    assert draws["batch"] == draws["ask"]
    assert len({d["lr"] for d in draws["batch"]}) == 6


def test_a_batch_trial_suggests_its_drawn_values_without_writing(tmp_path: Path) -> None:
    study = sqlite_study(tmp_path / "s.db", optuna.samplers.RandomSampler(seed=0))
    trial = BatchAsker(study, suggest).ask()
    before = study.get_trials(deepcopy=False)[-1].params
    assert suggest(trial) == before and trial.params == before
    study.tell(trial, 1.0)
    assert study.best_trial.params == before


def test_queued_trials_come_first_and_other_samplers_use_study_ask(tmp_path: Path) -> None:
    study = sqlite_study(tmp_path / "q.db", optuna.samplers.TPESampler(seed=0))
    study.enqueue_trial({"family": "cnn", "lr": 0.01, "kernel": 5})
    asker = BatchAsker(study, suggest)
    first, second = asker.ask(), asker.ask()
    assert suggest(first) == {"family": "cnn", "lr": 0.01, "kernel": 5}
    assert second.number == first.number + 1 and "lr" in suggest(second)

    grid = {"family": ["gru", "cnn"], "lr": [0.01, 0.1], "hidden": [32], "kernel": [3]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the grid's "not in the search space" notes for conditional params
        gstudy = sqlite_study(tmp_path / "g.db", optuna.samplers.GridSampler(grid, seed=0), name="g")
        gasker = BatchAsker(gstudy, suggest)
        assert not gasker.mirrored  # the grid keeps its visited points in trial attributes
        drawn = [suggest(gasker.ask()) for _ in range(4)]
    assert len({(d["family"], d["lr"]) for d in drawn}) == 4  # every grid point once


@pytest.mark.parametrize("n", [0, 3])
def test_a_batch_over_an_empty_or_running_study(tmp_path: Path, n: int) -> None:
    study = sqlite_study(tmp_path / f"r{n}.db", optuna.samplers.TPESampler(seed=1, constant_liar=True))
    running = [study.ask() for _ in range(n)]
    for t in running:
        suggest(t)
    asker = BatchAsker(study, suggest)
    new = [asker.ask() for _ in range(3)]
    assert [t.number for t in new] == list(range(n, n + 3))
    assert all(t.state == TrialState.RUNNING for t in study.get_trials(deepcopy=False))


def test_a_journal_study_asks_as_before(tmp_path: Path) -> None:
    """A journal file is replayed into memory: its reads cost nothing to save."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(tmp_path / "j.log")))
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.TPESampler(seed=0), direction="maximize")
    asker = BatchAsker(study, suggest)
    assert not asker.mirrored
    assert "lr" in suggest(asker.ask())
