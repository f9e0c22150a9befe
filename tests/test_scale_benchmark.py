"""benchmarks/scale.py's core: worker processes run tiny trials on PostgreSQL, directly and through
the storage server, and the run accounts for every trial (behaviour only; timings are the
benchmark's job)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import optuna
import pytest

ROOT = Path(__file__).resolve().parents[1]
POSTGRES = os.environ.get("TUNELAB_TEST_POSTGRES_URL")
pytestmark = [pytest.mark.postgres, pytest.mark.skipif(not POSTGRES, reason="set TUNELAB_TEST_POSTGRES_URL")]

sys.path.insert(0, str(ROOT / "benchmarks"))  # the workers pickle scale.worker by module name
import scale  # noqa: E402


@pytest.mark.slow  # worker processes and a storage server start per case: ~15 s each
@pytest.mark.parametrize("via", ["direct", "proxy"])
def test_every_trial_is_accounted_for(via: str) -> None:
    res = scale.run_config(str(POSTGRES), via, workers=2, trials=20, sleep_ms=1.0)
    assert (res.errors, res.first_error) == (0, "")
    assert res.complete == 20 and res.lost == 0 and res.duplicates == 0
    assert {op: len(xs) for op, xs in res.samples.items()} == {"ask": 20, "tell": 20, "loop": 20}
    assert res.peak_connections >= 1  # the workers' (or the server's) own connections were seen
    assert res.seconds > 0 and res.trials_per_s > 0
    study_names = [s.study_name for s in optuna.get_all_study_summaries(str(POSTGRES))]
    assert not any(n.startswith("tunelab-scale-") and n.endswith(f"-{via}-2") for n in study_names)  # deleted


def test_a_worker_that_cannot_connect_is_an_error_with_its_reason() -> None:
    bad = str(POSTGRES).rsplit("/", 1)[0] + "/tunelab_scale_no_such_database"
    res = scale.Result("direct", workers=2, trials=4)
    handed = scale._drive(bad, "absent", 2, 4, 0.001, True, res)
    assert handed == [] and res.errors == 2 and res.first_error.startswith("open: storage ")
    assert res.samples == {"ask": [], "tell": [], "loop": []}


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_lost_trial_is_counted() -> None:
    """The audit counts what the storage holds: a trial asked and never told is lost; one the
    heartbeat rule failed is not, once its retry completed."""
    from optuna.trial import TrialState, create_trial

    from tunelab.storage import make_storage

    storage = make_storage(str(POSTGRES))
    name = f"tunelab-scale-audit-{os.getpid()}"
    study = optuna.create_study(study_name=name, storage=storage)
    try:
        for _ in range(2):
            study.tell(study.ask(), 1.0)
        study.ask()  # 2: never told, RUNNING at the end
        study.tell(study.ask(), state=TrialState.FAIL)  # 3: failed by the heartbeat rule ...
        study.add_trial(create_trial(value=1.0, system_attrs={"failed_trial": 3}))  # ... and retried
        res = scale.Result("direct", workers=1, trials=5)
        scale._audit(storage, name, handed=[0, 1, 2, 2, 3], res=res)
        assert (res.complete, res.lost, res.duplicates) == (3, 1, 1)
    finally:
        optuna.delete_study(study_name=name, storage=storage)


def test_table_and_verdict() -> None:
    fast = scale.Result("proxy", workers=8, trials=10, seconds=2.0, complete=10)
    fast.samples = {"ask": [5.0] * 10, "tell": [3.0] * 10, "loop": []}
    slow = scale.Result("proxy", workers=64, trials=10, seconds=2.0, complete=10)
    slow.samples = {"ask": [5.0] * 9 + [500.0], "tell": [3.0] * 10, "loop": []}
    lossy = scale.Result("direct", workers=16, trials=10, seconds=2.0, complete=9, lost=1)
    lossy.samples = {"ask": [5.0] * 9, "tell": [3.0] * 9, "loop": []}
    rows = scale.table([fast, slow, lossy]).splitlines()
    assert len(rows) == 5 and "| gRPC proxy | 8 | 10 | 2.0 | 5.0 |" in rows[2] and "| - | - |" in rows[2]
    lines = scale.verdict([fast, slow, lossy])
    assert "PostgreSQL direct" in lines[0] and "none of the counts run" in lines[0]
    assert "gRPC proxy" in lines[1] and ": 8 workers" in lines[1]
