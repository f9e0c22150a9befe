"""Server storages, as many workers on many machines would use them (CI provides both): PostgreSQL
(Optuna's RDB storage) and Redis (a journal storage, with tunelab's own heartbeat)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import optuna
import pytest

from tests.tune.conftest import options, tiny_study
from tunelab.tune import tune
from tunelab.tune.study import make_storage, mask_url

POSTGRES = os.environ.get("TUNELAB_TEST_POSTGRES_URL")
REDIS = os.environ.get("TUNELAB_TEST_REDIS_URL")


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(
            POSTGRES,
            id="postgres",
            marks=[pytest.mark.postgres, pytest.mark.skipif(not POSTGRES, reason="set TUNELAB_TEST_POSTGRES_URL")],
        ),
        pytest.param(
            REDIS,
            id="redis",
            marks=[pytest.mark.redis, pytest.mark.skipif(not REDIS, reason="set TUNELAB_TEST_REDIS_URL")],
        ),
    ],
)
def test_two_workers_and_a_resume(tmp_path: Path, splits: Any, url: str) -> None:
    name = f"server-{uuid.uuid4().hex[:8]}"
    storage = make_storage(url)
    try:
        first = tune(
            tiny_study(storage=url, sampler="random", budget={"n_trials": 3}),
            options(tmp_path, study_name=name, workers=2),
            data=splits,
        )
        assert first.storage == mask_url(url) and first.states == {"COMPLETE": 3}
        again = tune(
            tiny_study(storage=url, sampler="random", budget={"n_trials": 1}),
            options(tmp_path, study_name=name, resume=True),
            data=splits,
        )
        trials = optuna.load_study(study_name=name, storage=storage).trials
        assert again.states == {"COMPLETE": 4} and [t.number for t in trials] == [0, 1, 2, 3]
        assert len({t.params["train.lr"] for t in trials}) == 4
        assert all(t.intermediate_values for t in trials)  # every epoch reported through the server
    finally:
        optuna.delete_study(study_name=name, storage=storage)
