"""A server storage (PostgreSQL), as many workers on many machines would use (CI provides one)."""

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

URL = os.environ.get("TUNELAB_TEST_POSTGRES_URL")
pytestmark = [pytest.mark.postgres, pytest.mark.skipif(not URL, reason="set TUNELAB_TEST_POSTGRES_URL")]


def test_two_workers_and_a_resume_on_postgres(tmp_path: Path, splits: Any) -> None:
    assert URL is not None
    name = f"pg-{uuid.uuid4().hex[:8]}"
    cfg = tiny_study(storage=URL, sampler="random", budget={"n_trials": 3})
    storage = make_storage(URL)
    try:
        first = tune(cfg, options(tmp_path, study_name=name, workers=2), data=splits)
        assert first.storage == mask_url(URL) and first.states == {"COMPLETE": 3}
        again = tune(
            tiny_study(storage=URL, sampler="random", budget={"n_trials": 1}),
            options(tmp_path, study_name=name, resume=True),
            data=splits,
        )
        trials = optuna.load_study(study_name=name, storage=storage).trials
        assert again.states == {"COMPLETE": 4} and [t.number for t in trials] == [0, 1, 2, 3]
        assert len({t.params["train.lr"] for t in trials}) == 4
    finally:
        optuna.delete_study(study_name=name, storage=storage)
