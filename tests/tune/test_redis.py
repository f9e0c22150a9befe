"""A Redis journal storage (``redis://``), for workers that share no file system (CI provides one)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import optuna
import pytest

from tests.tune.conftest import options, tiny_study
from tunelab.tune import tune
from tunelab.tune.study import is_rdb, make_storage

URL = os.environ.get("TUNELAB_TEST_REDIS_URL")
pytestmark = [pytest.mark.redis, pytest.mark.skipif(not URL, reason="set TUNELAB_TEST_REDIS_URL")]


def test_two_workers_and_a_resume_on_redis(tmp_path: Path, splits: Any) -> None:
    assert URL is not None
    name = f"redis-{uuid.uuid4().hex[:8]}"
    storage = make_storage(URL)
    assert isinstance(storage, optuna.storages.JournalStorage) and not is_rdb(URL)  # tunelab's own heartbeat
    try:
        first = tune(
            tiny_study(storage=URL, sampler="random", budget={"n_trials": 3}),
            options(tmp_path, study_name=name, workers=2),
            data=splits,
        )
        assert first.states == {"COMPLETE": 3}
        again = tune(
            tiny_study(storage=URL, sampler="random", budget={"n_trials": 1}),
            options(tmp_path, study_name=name, resume=True),
            data=splits,
        )
        trials = optuna.load_study(study_name=name, storage=storage).trials
        assert again.states == {"COMPLETE": 4} and [t.number for t in trials] == [0, 1, 2, 3]
        assert all(t.intermediate_values for t in trials)  # each epoch reported through Redis
    finally:
        optuna.delete_study(study_name=name, storage=storage)
