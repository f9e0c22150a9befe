"""The tracker contract and its callback, against an in-memory tracker; config and import costs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import pytest
from tests.helpers import tiny_splits

import tunelab  # noqa: F401
from tunelab.config import load_config
from tunelab.errors import UserError
from tunelab.track import (
    FAILED,
    FINISHED,
    PRUNED,
    StudySummary,
    TrackedRun,
    Tracker,
    TrackerCallback,
    TrackingConfig,
    WandbConfig,
    abort_on_error,
    flatten,
    make_trackers,
    study_tracking,
    summarize_study,
)
from tunelab.train import BaseCallback, Diverged, EpochReport, fit

FAST = ["model.hidden_dim=4", "model.num_layers=1", "train.batch_size=16", "train.max_epochs=3", "model.dropout=0"]


class MemoryRun:
    def __init__(self, name: str, params: Mapping[str, Any], tags: Mapping[str, Any], nested: bool) -> None:
        self.name, self.params, self.tags, self.nested = name, dict(params), dict(tags), nested
        self.metrics: list[tuple[int, dict[str, float]]] = []
        self.artifacts: list[str] = []
        self.status: str | None = None

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self.metrics.append((step, dict(metrics)))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.tags |= tags

    def log_artifact(self, path: Path) -> None:
        self.artifacts.append(Path(path).name)

    def end(self, status: str = FINISHED) -> None:
        assert self.status is None, "ended twice"
        self.status = status


class MemoryTracker:
    name = "memory"

    def __init__(self) -> None:
        self.runs: list[MemoryRun] = []
        self.study: tuple[str, dict[str, Any]] | None = None
        self.ended: tuple[StudySummary | None, list[Path], str] | None = None

    def start_study(self, name: str, config: Mapping[str, Any], tags: Mapping[str, Any]) -> None:
        self.study = (name, dict(config))

    def start_run(
        self, name: str, params: Mapping[str, Any], tags: Mapping[str, Any], nested: bool = False
    ) -> MemoryRun:
        self.runs.append(MemoryRun(name, params, tags, nested))
        return self.runs[-1]

    def end_study(self, summary: StudySummary | None, artifacts: Sequence[Path], status: str = FINISHED) -> None:
        self.ended = (summary, list(artifacts), status)


class RaiseAt(BaseCallback):
    def __init__(self, epoch: int, exc: BaseException) -> None:
        self.epoch, self.exc = epoch, exc

    def on_epoch_end(self, ctx, report) -> None:  # type: ignore[no-untyped-def]
        if report.epoch == self.epoch:
            raise self.exc


def test_memory_tracker_satisfies_the_protocols() -> None:
    tracker = MemoryTracker()
    assert isinstance(tracker, Tracker)
    assert isinstance(tracker.start_run("r", {}, {}), TrackedRun)


def test_flatten_makes_dotted_keys() -> None:
    assert flatten({"model": {"name": "gru", "hidden_dim": 8}, "seed": 0, "w": [1, 2], "empty": {}}) == {
        "model.name": "gru",
        "model.hidden_dim": 8,
        "seed": 0,
        "w": [1, 2],
        "empty": {},
    }


def test_callback_logs_params_every_epoch_and_the_final_state(tmp_path: Path) -> None:
    tracker = MemoryTracker()
    result = fit(
        load_config(None, FAST),
        data=tiny_splits(24),
        callbacks=[TrackerCallback(tracker, "run-a", tags={"who": "me"})],
        run_dir=tmp_path,
    )
    (run,) = tracker.runs
    assert run.name == "run-a" and not run.nested and run.status == FINISHED
    assert run.params["model.hidden_dim"] == 4 and run.params["train.lr"] == result.config.train.lr
    assert run.params["n_params"] == result.n_params
    epochs = [(step, m) for step, m in run.metrics if "train_loss" in m and "test_acc" not in m]
    assert [step for step, _ in epochs] == [1, 2, 3]
    for _, m in epochs:
        assert {"val_loss", "grad_norm", "clip_frac"} <= set(m) and any(k.startswith("lr/") for k in m)
    final_step, final = run.metrics[-1]
    assert final_step == 3 and final["test_acc"] == result.metrics["test_acc"]
    assert final["best_val_loss"] == result.metrics["val_loss"]  # per-epoch names get a best_ prefix
    assert run.tags["who"] == "me"
    assert run.tags["state"] == "COMPLETE" and run.tags["epochs"] == 3 and run.tags["best_epoch"] == result.best_epoch
    assert run.tags["model"] == "gru"
    assert set(run.artifacts) == {"config.json", "summary.json", "best_model.pt"}


class ScalarModelProbe(BaseCallback):
    """Give the model an extra_scalars() hook, as the ConvGRU plugin does."""

    def on_fit_start(self, ctx) -> None:  # type: ignore[no-untyped-def]
        ctx.model.extra_scalars = lambda: {"lambda_fix": 0.5}


def test_model_scalars_reach_the_tracker() -> None:
    tracker = MemoryTracker()
    fit(load_config(None, FAST), data=tiny_splits(24), callbacks=[ScalarModelProbe(), TrackerCallback(tracker)])
    assert all(m["extra/lambda_fix"] == 0.5 for _, m in tracker.runs[0].metrics[:-1])


@pytest.mark.parametrize(
    ("exc", "status", "state"),
    [
        (optuna.TrialPruned("pruned at epoch 2"), PRUNED, "PRUNED"),
        (Diverged(2), PRUNED, "PRUNED"),
        (RuntimeError("boom"), FAILED, "FAIL"),
    ],
)
def test_a_fit_stopped_by_an_exception_ends_its_run(exc: BaseException, status: str, state: str) -> None:
    tracker = MemoryTracker()
    cbs = [TrackerCallback(tracker, "t", nested=True)]
    with pytest.raises(type(exc)), abort_on_error(cbs):
        fit(load_config(None, FAST), data=tiny_splits(24), callbacks=[*cbs, RaiseAt(2, exc)])
    (run,) = tracker.runs
    assert run.status == status and run.tags["state"] == state and run.tags["epochs"] == 2
    assert [step for step, _ in run.metrics] == [1, 2]  # the epoch that stopped it is logged
    assert ("pruned_epoch" in run.tags) == (status == PRUNED)
    if status == FAILED:
        assert "boom" in run.tags["reason"]


def test_pack_member_filter_logs_only_its_member() -> None:
    tracker = MemoryTracker()
    cb = TrackerCallback(tracker, member=1)
    cb.run = tracker.start_run("r", {}, {})
    cb.on_epoch_end(None, EpochReport(epoch=1, metrics={"val_loss": 1.0}, member=0))  # type: ignore[arg-type]
    cb.on_epoch_end(None, EpochReport(epoch=1, metrics={"val_loss": 2.0, "bad": float("nan")}, member=1))  # type: ignore[arg-type]
    assert tracker.runs[0].metrics == [(1, {"val_loss": 2.0})]


def test_study_tracking_nests_trials_and_closes_with_the_summary(tmp_path: Path) -> None:
    tracker = MemoryTracker()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2 + t.suggest_int("n", 0, 3), n_trials=5)
    with study_tracking([tracker], "s1", {"a": {"b": 1}}) as st:
        with st.trial("trial-0", tags={"trial": 0}, params={"x": 0.5}) as cbs:
            assert [cb.nested for cb in cbs] == [True]
        st.finish(summarize_study(study), [tmp_path / "best_model.pt"])
    assert tracker.study == ("s1", {"a": {"b": 1}})
    summary, artifacts, status = tracker.ended  # type: ignore[misc]
    assert status == FINISHED and artifacts == [tmp_path / "best_model.pt"]
    assert summary.best_value == pytest.approx(study.best_value) and summary.best_number == study.best_trial.number
    assert summary.best_params == study.best_params
    assert [r.best_value for r in summary.trials] == sorted((r.best_value for r in summary.trials), reverse=True)
    assert set(summary.importances) == {"x", "n"} and summary.states == {"COMPLETE": 5}

    failing = MemoryTracker()
    with pytest.raises(KeyError), study_tracking([failing], "s2") as st:
        raise KeyError("x")
    assert failing.ended == (None, [], FAILED)


def test_tracking_config_resolves_the_local_mlflow_database(tmp_path: Path) -> None:
    cfg = TrackingConfig(save_dir=tmp_path, mlflow="auto")
    assert cfg.mlflow_uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db" and cfg.enabled
    assert cfg.mlflow_artifacts == (tmp_path / "mlartifacts").resolve().as_uri()
    assert TrackingConfig(mlflow="http://127.0.0.1:5000").mlflow_uri == "http://127.0.0.1:5000"
    off = TrackingConfig(save_dir=tmp_path, wandb=WandbConfig(enabled=True, mode="disabled"))
    assert not off.enabled and make_trackers(off) == []


@pytest.mark.parametrize(
    ("flags", "module", "message"),
    [
        ({"mlflow": "auto"}, "mlflow", "MLflow tracking needs the mlflow package: pip install 'tunelab[mlflow]'"),
        (
            {"wandb": WandbConfig(enabled=True)},
            "wandb",
            "W&B tracking needs the wandb package: pip install 'tunelab[wandb]'",
        ),
        (
            {"tensorboard": True},
            "tensorboard",
            "TensorBoard tracking needs the tensorboard package: pip install 'tunelab[tensorboard]'",
        ),
    ],
)
def test_a_flag_without_its_package_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, flags: dict[str, Any], module: str, message: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(UserError) as err:
        make_trackers(TrackingConfig(save_dir=tmp_path, **flags))
    assert str(err.value) == message


def test_tracking_off_imports_none_of_the_trackers() -> None:
    code = textwrap.dedent(
        """
        import sys
        import tunelab, tunelab.track
        from tests.helpers import tiny_splits
        from tunelab.config import load_config
        from tunelab.track import TrackingConfig, run_tracking
        from tunelab.train import fit

        with run_tracking(TrackingConfig(), "off") as cbs:
            assert cbs == []
            fit(load_config(None, ["model.hidden_dim=4", "train.max_epochs=1", "train.batch_size=16"]), data=tiny_splits(24), callbacks=cbs)
        heavy = ("mlflow", "wandb", "tensorboard", "tensorboardX", "torch.utils.tensorboard", "optuna_dashboard")
        print(sorted(m for m in sys.modules if m.split(".")[0] in heavy or m == "torch.utils.tensorboard"))
        """
    )
    root = Path(__file__).resolve().parents[2]
    env = {"PYTHONPATH": f"{root / 'src'}:{root}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=root, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


class FlakyRun(MemoryRun):
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        if step == 2:
            raise ConnectionError("server went away")
        super().log_metrics(metrics, step)


class FlakyTracker(MemoryTracker):
    def start_run(
        self, name: str, params: Mapping[str, Any], tags: Mapping[str, Any], nested: bool = False
    ) -> MemoryRun:
        self.runs.append(FlakyRun(name, params, tags, nested))
        return self.runs[-1]


def test_a_failing_tracker_is_dropped_with_a_warning_and_training_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    tracker = FlakyTracker()
    result = fit(load_config(None, FAST), data=tiny_splits(24), callbacks=[TrackerCallback(tracker)])
    assert result.epochs == 3
    (run,) = tracker.runs
    assert [step for step, _ in run.metrics] == [1] and run.status == FAILED
    assert "memory tracking failed while logging epoch 2 (ConnectionError: server went away)" in caplog.text
