"""One small tracked study shared by the tracker tests: every tracker on, three trials (complete,
pruned at epoch 2, complete) and one standalone `train` run.  Each test then reads the files back
with the tool's own client."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
import torch
from tests.helpers import no_study_reference, tiny_splits  # noqa: F401  (an autouse fixture)

import tunelab  # noqa: F401  (fills the model registry)
from tunelab.config import load_config, save_config
from tunelab.track import StudyTracking, TrackingConfig, WandbConfig, run_tracking, study_tracking, summarize_study
from tunelab.train import BaseCallback, fit

FAST = ["model.hidden_dim=8", "model.num_layers=1", "train.batch_size=16", "train.max_epochs=3", "model.dropout=0"]
STUDY = "tiny-study"
PRUNE_AT = 2


class PruneAt(BaseCallback):
    """Prune a trial at a fixed epoch, as Optuna's pruner would."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, ctx, report) -> None:  # type: ignore[no-untyped-def]
        if report.epoch == self.epoch:
            raise optuna.TrialPruned(f"pruned at epoch {report.epoch}")


@dataclass
class TrackedStudy:
    save_dir: Path
    study: optuna.Study
    train_run_dir: Path
    report: Path
    best_model: Path


def _objective(st: StudyTracking, save_dir: Path):  # type: ignore[no-untyped-def]
    splits = tiny_splits(24)

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("train.lr", 1e-3, 1e-2, log=True)
        hidden = trial.suggest_categorical("model.hidden_dim", [4, 8])
        cfg = load_config(None, [*FAST, f"train.lr={lr}", f"model.hidden_dim={hidden}"])
        run_dir = save_dir / STUDY / "trials" / str(trial.number)
        extra = [PruneAt(PRUNE_AT)] if trial.number == 1 else []
        with st.trial(f"trial-{trial.number}", tags={"trial": trial.number}, params=trial.params) as cbs:
            result = fit(cfg, data=splits, callbacks=[*cbs, *extra], run_dir=run_dir)
        trial.set_user_attr("epochs", result.epochs)
        trial.set_user_attr("test_acc", result.metrics["test_acc"])
        return result.metrics["val_acc"]

    return objective


@pytest.fixture(scope="session")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> TrackedStudy:
    save_dir = tmp_path_factory.mktemp("runs")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only contend on a shared CPU
    try:
        return _run_tracked(save_dir)
    finally:
        torch.set_num_threads(threads)


def _run_tracked(save_dir: Path) -> TrackedStudy:
    tracking = TrackingConfig(
        save_dir=save_dir,
        mlflow="auto",
        wandb=WandbConfig(enabled=True, project="tunelab-test", mode="offline"),
        tensorboard=True,
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=STUDY, direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study_cfg = {"objective": "val_acc", "n_trials": 3, "base": save_config(load_config(None, FAST))}
    with study_tracking(tracking, STUDY, study_cfg, tags={"phase": "coarse"}) as st:
        study.optimize(_objective(st, save_dir), n_trials=3, catch=())
        best_model = save_dir / STUDY / "trials" / str(study.best_trial.number) / "best_model.pt"
        report = save_dir / STUDY / "report.html"
        report.write_text("<html><body>report</body></html>")
        st.finish(summarize_study(study), [best_model, report])

    train_dir = save_dir / "gru-single"
    with run_tracking(tracking, "gru-single") as cbs:
        fit(load_config(None, FAST), data=tiny_splits(24), callbacks=cbs, run_dir=train_dir)
    return TrackedStudy(save_dir, study, train_dir, report, best_model)
