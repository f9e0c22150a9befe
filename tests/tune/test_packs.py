"""`tune --pack-size`: trials asked together train as packs and each is told its own outcome —
the same values as solo trials, members pruned alone, nothing left RUNNING after an interrupt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

from tests.reliability.common import invoke_main
from tests.tune.conftest import TINY_BASE, options, tiny_study
from tunelab.config import ExperimentConfig
from tunelab.errors import UserError
from tunelab.results.attrs import TRIAL
from tunelab.train import BaseCallback, fit
from tunelab.tune import tune
from tunelab.tune.execution.packs import default_pack_size, members_that_fit, parse_pack_size, resolve_pack_size

LR_ONLY = {"train.lr": {"low": 1e-3, "high": 3e-2, "log": True}, "train.weight_decay": {"low": 1e-5, "high": 1e-2}}


def _trials(result: Any) -> list[optuna.trial.FrozenTrial]:
    storage = f"sqlite:///{result.study_dir.parent / 'tunelab.db'}"
    return optuna.load_study(study_name=result.study_name, storage=storage).trials


def test_packed_trials_equal_their_solo_runs(tmp_path: Path, splits: Any) -> None:
    study = tiny_study(space=LR_ONLY, budget={"n_trials": 4}, pruner={"name": "none"})
    result = tune(study, options(tmp_path, pack_size=4), data=splits)
    trials = _trials(result)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    assert {t.user_attrs[TRIAL.PACK_SIZE] for t in trials} == {4}
    for t in trials:
        solo = fit(ExperimentConfig.model_validate(t.user_attrs[TRIAL.CONFIG]), data=splits)
        assert t.value == pytest.approx(solo.metrics["val_f1"], rel=1e-4, abs=1e-6)
        assert t.user_attrs[TRIAL.EPOCHS] == solo.epochs
        assert (result.study_dir / t.user_attrs[TRIAL.RUN_DIR] / "best_model.pt").is_file()
    assert (result.study_dir / "best_model.pt").is_file()


def test_a_pack_frees_device_memory_once_not_per_member(
    tmp_path: Path, splits: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full gc.collect() costs ~0.3 s: four members told together free memory once."""
    from tunelab.tune.execution import objective, packs

    calls: list[str] = []
    monkeypatch.setattr(objective, "_free_memory", lambda: calls.append("objective"))
    monkeypatch.setattr(packs, "_free_memory", lambda: calls.append("pack"))
    study = tiny_study(space=LR_ONLY, budget={"n_trials": 4}, pruner={"name": "none"})
    result = tune(study, options(tmp_path, pack_size=4), data=splits)
    assert [t.state.name for t in _trials(result)] == ["COMPLETE"] * 4
    assert calls == ["pack"]


class _PruneOdd(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.number % 2 == 1


def test_members_are_pruned_alone(tmp_path: Path, splits: Any) -> None:
    study = tiny_study(space=LR_ONLY, budget={"n_trials": 4})
    packed = tune(study, options(tmp_path / "p", pack_size=4, study_name="p"), data=splits)
    storage = f"sqlite:///{packed.study_dir.parent / 'tunelab.db'}"
    # the same four configs again, solo, with a pruner that stops the odd trials after epoch 1
    s = optuna.load_study(study_name="p", storage=storage)
    again = optuna.create_study(study_name="odd", storage=storage, direction="maximize", pruner=_PruneOdd())
    for t in s.trials:
        again.enqueue_trial(t.params)
    from tunelab.tune.execution.objective import Objective
    from tunelab.tune.execution.packs import run_packs
    from tunelab.tune.space import build_space

    objective = Objective(build_space(study), ["val_f1"], tmp_path / "odd", data=splits)
    told: list[list[optuna.trial.FrozenTrial]] = []
    run_packs(again, objective, 4, 4, None, lambda _s, ts: told.append(ts) or False)
    states = [t.state.name for t in again.trials]
    assert states == ["COMPLETE", "PRUNED", "COMPLETE", "PRUNED"]
    assert [sorted(t.number for t in ts) for ts in told] == [[0, 1, 2, 3]]  # told together, once per pack
    assert all(t.user_attrs[TRIAL.REASON] == "pruned at epoch 1" for t in again.trials if t.state.name == "PRUNED")
    # masking the pruned members changed nothing for the others
    for a, b in zip(s.trials, again.trials, strict=True):
        if b.state.name == "COMPLETE":
            assert b.value == pytest.approx(a.value, rel=1e-4, abs=1e-6)


def test_different_shapes_train_in_separate_packs(tmp_path: Path, splits: Any) -> None:
    space = {**LR_ONLY, "model.hidden_dim": [4, 8]}
    enqueue = [{"model.hidden_dim": h} for h in (4, 8, 4, 8, 8)]
    result = tune(
        tiny_study(space=space, budget={"n_trials": 5}), options(tmp_path, pack_size=5, enqueue=enqueue), data=splits
    )
    trials = _trials(result)
    assert all(t.state.name == "COMPLETE" for t in trials)
    by_size = {t.params["model.hidden_dim"]: t.user_attrs[TRIAL.PACK_SIZE] for t in trials}
    assert by_size == {4: 2, 8: 3}


class _Interrupt(BaseCallback):
    def on_epoch_end(self, ctx: Any, report: Any) -> None:
        if report.epoch == 1 and report.member == 2:
            raise KeyboardInterrupt


def test_an_interrupt_leaves_no_trial_running(tmp_path: Path, splits: Any) -> None:
    study = tiny_study(space=LR_ONLY, budget={"n_trials": 8})
    with pytest.raises(KeyboardInterrupt):
        tune(study, options(tmp_path, pack_size=4, study_name="i"), data=splits, callbacks=[_Interrupt()])
    s = optuna.load_study(study_name="i", storage=f"sqlite:///{tmp_path / 'tunelab.db'}")
    assert len(s.trials) == 4
    assert {t.state.name for t in s.trials} == {"FAIL"}
    assert {t.user_attrs[TRIAL.REASON] for t in s.trials} == {"interrupted"}


def test_pack_size_values() -> None:
    assert parse_pack_size("auto") == "auto" and parse_pack_size("8") == 8 and parse_pack_size(None) == 1
    for bad in ("0", "-2", "many"):
        with pytest.raises(UserError, match="--pack-size"):
            parse_pack_size(bad)
    assert resolve_pack_size("auto", "cpu") == 1 and resolve_pack_size(16, "cpu") == 16
    gib = 1024**3
    assert members_that_fit(10 * gib, gib) == 7  # 70% of the free memory
    assert members_that_fit(gib, 10 * gib) == 1 and members_that_fit(1000 * gib, 1, cap=64) == 64


def test_studies_sharing_a_gpu_each_plan_a_part_of_its_memory(
    tmp_path: Path, splits: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    gib = 1024**3
    monkeypatch.setenv("TUNELAB_MEMORY_SHARE", "0.07")  # ten studies at once
    assert members_that_fit(100 * gib, gib) == 7
    monkeypatch.setenv("TUNELAB_MEMORY_SHARE", "70%")
    study = tiny_study(space=LR_ONLY, budget={"n_trials": 2})
    with pytest.raises(UserError, match="TUNELAB_MEMORY_SHARE=70%: use a number above 0 and at most 1"):
        tune(study, options(tmp_path, pack_size=2), data=splits)
    assert not _trials_or_none(tmp_path)  # stopped before any trial


def _trials_or_none(save_dir: Path) -> list[Any]:
    dbs = list(save_dir.glob("tunelab.db"))
    if not dbs:
        return []
    storage = f"sqlite:///{dbs[0]}"
    return [
        t
        for s in optuna.get_all_study_summaries(storage)
        for t in optuna.load_study(study_name=s.study_name, storage=storage).trials
    ]


def test_a_study_that_names_no_pack_size_packs_on_a_gpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small sequence models leave a GPU mostly idle: one process on CUDA packs by default; a CPU,
    or worker processes sharing the device, train one trial at a time."""
    from tunelab.train import device as devices

    monkeypatch.setattr(devices, "resolve_device", lambda name: torch.device("cpu"))
    assert default_pack_size("auto", 1) == 1
    monkeypatch.setattr(devices, "resolve_device", lambda name: torch.device("cuda"))
    assert default_pack_size("auto", 1) == "auto" and default_pack_size("auto", 4) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--pack-size", "0"], "--pack-size 0"), (["--pack-size", "4", "--workers", "2"], "--pack-size with --workers")],
)
def test_cli_refuses_bad_pack_sizes(tmp_path: Path, args: list[str], message: str) -> None:
    out = invoke_main(["tune", "--model", "gru", "--trials", "1", "--save-dir", str(tmp_path), *args])
    assert out.code == 2, out.output
    assert message in out.output and "Traceback" not in out.output
    assert not any(tmp_path.iterdir())  # nothing half-created


def _prune_epochs(
    tmp: Path, pruner: optuna.pruners.BasePruner, reread_after: float | None
) -> tuple[list[tuple[int, int]], int]:
    """Five running members report six epochs beside six finished trials; (epoch, member) pruned, reads."""
    import random

    from tunelab.tune.reporting.reads import SharedReads

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp / 'prune.db'}")
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize", pruner=pruner)
    rng = random.Random(0)
    for _ in range(6):
        curve = {e: rng.random() for e in range(1, 7)}
        study.add_trial(optuna.trial.create_trial(value=curve[6], intermediate_values=curve))
    members = [study.ask() for _ in range(5)]
    reads = SharedReads(study, reread_after) if reread_after is not None else None
    counted = {"n": 0}
    original = storage._get_trials

    def counting(*args: Any, **kwargs: Any) -> Any:
        counted["n"] += 1
        return original(*args, **kwargs)

    storage._get_trials = counting  # type: ignore[method-assign]
    pruned: list[tuple[int, int]] = []
    live = list(range(5))
    for epoch in range(1, 7):
        for m in list(live):
            value = rng.random()
            members[m].report(value, epoch)
            decision = reads.should_prune(members[m], epoch, value) if reads else members[m].should_prune()
            if decision:
                pruned.append((epoch, m))
                live.remove(m)
    return pruned, counted["n"]


@pytest.mark.parametrize(
    "make",
    [
        lambda: optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
        lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2),
        lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=6, reduction_factor=2),
    ],
    ids=["median", "successive_halving", "hyperband"],
)
def test_members_share_reads_and_prune_as_alone(tmp_path: Path, make: Any) -> None:
    runs = {}
    for name, reread_after in (("alone", None), ("every_epoch", 0.0), ("once", 3600.0)):
        (tmp_path / name).mkdir()
        runs[name] = _prune_epochs(tmp_path / name, make(), reread_after)
    alone, reads_alone = runs["alone"]
    assert alone  # the scenario prunes someone
    assert runs["every_epoch"][0] == alone and runs["once"][0] == alone  # the same decisions, in order
    assert runs["every_epoch"][1] <= 6 < reads_alone  # at most one read of the study per epoch
    assert runs["once"][1] == 1  # the members' own writes keep the one read current


def _trials_of(name: str, url: str) -> list[optuna.trial.FrozenTrial]:
    """The study's trials read by a fresh Optuna storage (a journal file through Optuna's own backend)."""
    if url.startswith("journal:///"):
        backend = optuna.storages.journal.JournalFileBackend(url.removeprefix("journal://"))
        return optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(backend)).trials
    return optuna.load_study(study_name=name, storage=url).trials


_KILL_AFTER_FIRST_MEMBER = """
import json, os, signal, sys
from tunelab.train import BaseCallback
from tunelab.tune import TuneOptions, study_from_mapping, tune

class KillAtEpoch2(BaseCallback):  # epoch 2 of the member still training: the other finished at 1
    def on_epoch_end(self, ctx, report):
        if report.epoch == 2:
            os.kill(os.getpid(), signal.SIGKILL)

spec, save_dir = json.loads(sys.argv[1]), sys.argv[2]
enqueue = [{"train.max_epochs": 1}, {"train.max_epochs": 3}]
opts = TuneOptions(save_dir=save_dir, study_name="k", report=False, reference=False, pack_size=2, enqueue=enqueue)
tune(study_from_mapping(spec), opts, callbacks=[KillAtEpoch2()])
"""


@pytest.mark.parametrize("storage", ["sqlite", "journal"])
def test_a_member_is_told_when_it_finishes_and_a_kill_right_after_keeps_it(tmp_path: Path, storage: str) -> None:
    """A pack of two: the member of one epoch is told (checkpoint first) while the other trains;
    the process is SIGKILLed at the other's next epoch: the finished one is COMPLETE with its files."""
    import json
    import signal
    import subprocess
    import sys

    from tests.reliability.common import TINY_BASE, check_artifacts, env
    from tunelab.results.io import load_checkpoint

    url = f"journal:///{tmp_path / 'study.log'}" if storage == "journal" else None
    spec = {
        "name": "k",
        "base": TINY_BASE,
        "space": {**LR_ONLY, "train.max_epochs": [1, 3]},
        "pruner": {"name": "none"},
        "budget": {"n_trials": 2},
        "storage": url,
    }
    runs = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_AFTER_FIRST_MEMBER, json.dumps(spec), str(runs)],
        env=env(),
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-3000:]
    done, running = _trials_of("k", url or f"sqlite:///{runs / 'tunelab.db'}")
    assert (done.params["train.max_epochs"], done.state.name) == (1, "COMPLETE")
    assert done.value is not None and done.user_attrs[TRIAL.EPOCHS] == 1
    run_dir = runs / "k" / done.user_attrs[TRIAL.RUN_DIR]
    assert load_checkpoint(run_dir / "best_model.pt") and (run_dir / "summary.json").is_file()
    assert (running.params["train.max_epochs"], running.state.name) == (3, "RUNNING")
    check_artifacts(runs / "k")  # nothing half-written


def _packed_study(tmp_path: Path, splits: Any, name: str) -> list[optuna.trial.FrozenTrial]:
    """Six trials in packs of three on a journal file, a median pruner that prunes in the second."""
    study = tiny_study(
        space=LR_ONLY,
        budget={"n_trials": 6},
        base={**TINY_BASE, "train": {**TINY_BASE["train"], "max_epochs": 4}},
        pruner={"name": "median", "options": {"n_startup_trials": 1, "n_warmup_steps": 0}},
        storage=f"journal:///{tmp_path / name}.log",
    )
    result = tune(study, options(tmp_path, pack_size=3, study_name=name), data=splits)
    trials = _trials_of(name, f"journal:///{tmp_path / name}.log")
    for t in trials:  # what analysis reads: a value per epoch run, the epoch's own metric
        lines = (result.study_dir / t.user_attrs[TRIAL.RUN_DIR] / "metrics.jsonl").read_text().splitlines()
        assert t.intermediate_values == {r["epoch"]: r["val_f1"] for r in map(json.loads, lines)}
    return trials


def test_fewer_journal_syncs_change_no_pruning_decision(
    tmp_path: Path, splits: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same seeded study on tunelab's journal file and on Optuna's own backend (an fsync per
    value): the same trials pruned at the same epochs, the same values stored."""
    import importlib

    fast = _packed_study(tmp_path, splits, "fast")
    monkeypatch.setattr(
        importlib.import_module("tunelab.storage"), "JournalFile", optuna.storages.journal.JournalFileBackend
    )
    plain = _packed_study(tmp_path, splits, "plain")

    def outcome(trials: list[optuna.trial.FrozenTrial]) -> list[Any]:
        return [(t.state.name, t.value, t.intermediate_values, t.user_attrs.get(TRIAL.PRUNED_EPOCH)) for t in trials]

    assert "PRUNED" in {t.state.name for t in fast}  # the scenario prunes someone
    assert outcome(fast) == outcome(plain)


def test_a_failed_probe_trains_the_group_alone(
    tmp_path: Path, splits: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Measuring a pack can run out of memory when other processes share the GPU: its trials then
    train one at a time, and the study goes on."""
    from tunelab.tune.execution import packs

    def no_room(cfg: Any, data: Any) -> int:
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(packs, "_measured_fit", no_room)
    study = tiny_study(space=LR_ONLY, budget={"n_trials": 4}, pruner={"name": "none"})
    with caplog.at_level("WARNING"):
        result = tune(study, options(tmp_path, pack_size=4), data=splits)
    trials = _trials(result)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    assert all(TRIAL.PACK_SIZE not in t.user_attrs for t in trials)  # trained alone
    assert "measuring a pack of gru failed (CUDA out of memory." in caplog.text


def test_a_pack_failing_as_a_whole_counts_as_one_failure_in_a_row() -> None:
    from optuna.trial import TrialState, create_trial

    from tunelab.tune.execution.run import FailureGuard

    def trial(state: TrialState, reason: str = "out of memory") -> optuna.trial.FrozenTrial:
        return create_trial(
            state=state, value=1.0 if state == TrialState.COMPLETE else None, user_attrs={TRIAL.REASON: reason}
        )

    guard = FailureGuard(2)
    assert not guard(*[trial(TrialState.FAIL)] * 8)  # one pack of 8, all out of memory: one failure
    assert not guard(trial(TrialState.COMPLETE), trial(TrialState.FAIL))  # a pack that trained resets the count
    assert not guard(trial(TrialState.FAIL))
    assert guard(trial(TrialState.FAIL, "broken plugin"))
    assert guard.message.startswith("2 trials failed in a row (last: broken plugin)")


def test_a_snapshot_reads_the_study_once_and_shows_what_it_holds(tmp_path: Path) -> None:
    """The lines of a pack's members told together come from one read of the study."""
    from tunelab.results.study import best_trial
    from tunelab.tune.reporting.reads import snapshot

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", direction="maximize")
    for value in (0.2, 0.9, 0.5):
        study.enqueue_trial({"x": value})
        trial = study.ask()
        study.tell(trial, trial.suggest_float("x", 0, 1))
    running = [study.ask() for _ in range(3)]
    reads: list[int] = []
    real = study._storage.get_all_trials

    def counted(*args: Any, **kwargs: Any) -> Any:
        reads.append(1)
        return real(*args, **kwargs)

    study._storage.get_all_trials = counted  # type: ignore[method-assign]
    seen = snapshot(study)
    assert len(reads) == 1
    assert [best_trial(seen).number for _ in running] == [1, 1, 1] and len(reads) == 1
    assert [t.number for t in seen.get_trials(deepcopy=False)] == list(range(6))
    assert seen.study_name == study.study_name and seen.directions == study.directions


def test_the_queue_count_is_read_once_for_a_packs_members(tmp_path: Path) -> None:
    """Members of a pack start together: one read of the study tells them all how many queued
    trials share the time left; a later start reads it again."""
    from tunelab.tune.execution.run import Queued

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'q.db'}")
    for x in (1, 2, 3):
        study.enqueue_trial({"x": x})
    queued = Queued(study, ttl=60.0)
    assert [queued() for _ in range(20)] == [3] * 20
    study.ask()  # one queued trial starts
    assert queued() == 3  # within the ttl: the members' shared count
    queued.read_at -= 61
    assert queued() == 2
