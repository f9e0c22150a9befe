"""On a CUDA machine: a real out-of-memory error fails its trial, frees the memory, and the study goes on;
``--pack-size auto`` measures the device and packs the trials."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

from tests.tune.conftest import options, tiny_study
from tunelab.results.attrs import TRIAL
from tunelab.train import BaseCallback
from tunelab.tune import tune

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


class _Hog(BaseCallback):
    """In the first trial, keep allocating 8 GiB blocks until CUDA runs out."""

    def __init__(self) -> None:
        self.fits = -1
        self.held: list[torch.Tensor] = []

    def on_fit_start(self, ctx: Any) -> None:
        self.fits += 1

    def on_epoch_end(self, ctx: Any, report: Any) -> None:
        if self.fits == 0:
            blocks = self.held
            while True:  # raises torch.cuda.OutOfMemoryError
                blocks.append(torch.empty(8 << 30, dtype=torch.uint8, device="cuda"))


def test_real_cuda_out_of_memory(tmp_path: Path, splits: Any) -> None:
    hog = _Hog()
    base = {**tiny_study().base.model_dump(), "device": "cuda"}
    result = tune(tiny_study(base=base), options(tmp_path, pack_size=1), data=splits, callbacks=[hog])
    study = optuna.load_study(study_name=result.study_name, storage=f"sqlite:///{tmp_path / 'tunelab.db'}")
    first, second = study.trials
    assert first.state.name == "FAIL" and first.user_attrs[TRIAL.REASON] == "out of memory"
    assert second.state.name == "COMPLETE"
    hog.held.clear()
    torch.cuda.empty_cache()
    assert torch.cuda.memory_allocated() < 1 << 30


LR_ONLY = {"train.lr": {"low": 1e-3, "high": 3e-2, "log": True}, "train.weight_decay": {"low": 1e-5, "high": 1e-2}}


def test_pack_size_auto_measures_the_device_and_packs(tmp_path: Path, splits: Any) -> None:
    from tunelab.config import ExperimentConfig
    from tunelab.tune.execution.packs import AUTO_CAP, _measured_fit

    base = {**tiny_study().base.model_dump(), "device": "cuda"}
    study = tiny_study(base=base, space=LR_ONLY, budget={"n_trials": 6})
    result = tune(study, options(tmp_path, pack_size="auto"), data=splits)
    trials = optuna.load_study(study_name=result.study_name, storage=f"sqlite:///{tmp_path / 'tunelab.db'}").trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 6
    assert {t.user_attrs[TRIAL.PACK_SIZE] for t in trials} == {6}  # the probe found room for all six
    assert (result.study_dir / "best_model.pt").is_file()
    cfg = ExperimentConfig.model_validate(trials[0].user_attrs[TRIAL.CONFIG])
    assert 2 <= _measured_fit(cfg, splits) <= AUTO_CAP


def test_a_study_on_a_gpu_packs_without_being_asked(tmp_path: Path, splits: Any) -> None:
    base = {**tiny_study().base.model_dump(), "device": "cuda"}
    result = tune(tiny_study(base=base, space=LR_ONLY, budget={"n_trials": 4}), options(tmp_path), data=splits)
    trials = optuna.load_study(study_name=result.study_name, storage=f"sqlite:///{tmp_path / 'tunelab.db'}").trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    assert {t.user_attrs[TRIAL.PACK_SIZE] for t in trials} == {4}
