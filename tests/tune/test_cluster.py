"""Many machines on one: the gRPC storage server in front of PostgreSQL, `tunelab worker` joining a
study from its storage, and a simulated host (a process group with its own TUNELAB_HOST_ID)
killed mid-trial whose trials another host fails, re-queues and finishes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest

from tests.reliability.common import cli_cmd, env, run_cli, study_file
from tests.test_storage import free_port
from tests.tune.conftest import options, tiny_study
from tunelab.tune import tune
from tunelab.tune.execution import owners

POSTGRES = os.environ.get("TUNELAB_TEST_POSTGRES_URL")
pytestmark = [pytest.mark.postgres, pytest.mark.skipif(not POSTGRES, reason="set TUNELAB_TEST_POSTGRES_URL")]


@pytest.fixture
def grpc_url(tmp_path: Path) -> Iterator[str]:
    """`tunelab storage-server` in front of PostgreSQL, on a free port of 127.0.0.1."""
    from optuna.storages import GrpcStorageProxy

    port = free_port()
    proc = subprocess.Popen(
        cli_cmd("storage-server", "--storage", str(POSTGRES), "--host", "127.0.0.1", "--port", str(port)),
        cwd=tmp_path,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        GrpcStorageProxy(host="127.0.0.1", port=port).wait_server_ready(timeout=60)
        yield f"grpc://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_study_through_the_storage_server(tmp_path: Path, splits: Any, grpc_url: str) -> None:
    name = f"grpc-{uuid.uuid4().hex[:8]}"
    result = tune(
        tiny_study(storage=grpc_url, sampler="random", budget={"n_trials": 2}),
        options(tmp_path, study_name=name),
        data=splits,
    )
    assert result.states == {"COMPLETE": 2} and result.storage == grpc_url
    direct = optuna.load_study(study_name=name, storage=str(POSTGRES))  # the plain URL, in Optuna itself
    assert [t.state.name for t in direct.trials] == ["COMPLETE", "COMPLETE"]
    assert all(t.intermediate_values for t in direct.trials)
    optuna.delete_study(study_name=name, storage=str(POSTGRES))


def _states(url: str, name: str) -> list[Any]:
    return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["postgres", "grpc"])
def test_a_killed_host_loses_no_trial(tmp_path: Path, kind: str, request: pytest.FixtureRequest) -> None:
    """Host A (tune, 2 workers) is SIGKILLed as a whole mid-trial; host B (`tunelab worker` on two
    devices) fails A's trials once their heartbeat is stale, re-queues them and finishes the budget."""
    url = request.getfixturevalue("grpc_url") if kind == "grpc" else str(POSTGRES)
    name = f"hosts-{kind}-{uuid.uuid4().hex[:8]}"
    base = {
        "data": {
            "name": "synthetic_gestures",
            "options": {"n": 96, "classes": 3, "channels": 2, "min_len": 20, "max_len": 30},
        },
        "model": {"name": "gru", "hidden_dim": 16, "num_layers": 1, "dropout": 0.0},
        "train": {"max_epochs": 12, "batch_size": 16, "schedule": "none"},
        "loss": {"temperature_scaling": False},
        "device": "cpu",
    }
    cfg = study_file(
        tmp_path / "study.yaml",
        base=base,
        budget={"n_trials": 4},
        pruner="none",
        heartbeat_interval=1,
        grace_period=3,
    )
    host_a = subprocess.Popen(
        cli_cmd("tune", "-c", str(cfg), "--storage", url, "--study-name", name, "--workers", "2", "--save-dir", "a"),
        cwd=tmp_path,
        env=env(TUNELAB_HOST_ID="host-a"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the whole "host" dies at once
    )
    storage_url = str(POSTGRES)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if any(t.state.name == "RUNNING" and t.intermediate_values for t in _states(storage_url, name)):
                    break
            except KeyError:
                pass  # the study is not created yet
            time.sleep(0.2)
        else:
            pytest.fail("host A never started a trial")
    finally:
        os.killpg(host_a.pid, signal.SIGKILL)
        host_a.wait(timeout=30)
    lost = [t.number for t in _states(storage_url, name) if t.state.name == "RUNNING"]
    assert lost, "host A was killed mid-trial"
    host_b = run_cli(
        "worker",
        "--storage",
        url,
        "--study-name",
        name,
        "--devices",
        "cpu,cpu",
        "--save-dir",
        "b",
        cwd=tmp_path,
        timeout=240,
        TUNELAB_HOST_ID="host-b",
    )
    assert host_b.returncode == 0, host_b.stderr
    trials = _states(storage_url, name)
    by_number = {t.number: t for t in trials}
    assert all(by_number[n].state.name == "FAIL" for n in lost)
    retries = {t.system_attrs.get("failed_trial"): t for t in trials if "failed_trial" in t.system_attrs}
    assert all(retries[n].state.name == "COMPLETE" and retries[n].params == by_number[n].params for n in lost)
    assert sum(t.state.name == "COMPLETE" for t in trials) >= 4
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    assert (tmp_path / "b" / name / "trials").is_dir()  # host B trained with the study from storage
    optuna.delete_study(study_name=name, storage=storage_url)


def test_worker_refuses_a_missing_study_in_one_line(tmp_path: Path) -> None:
    out = run_cli("worker", "--storage", str(POSTGRES), "--study-name", "no-such-study-x", cwd=tmp_path, timeout=120)
    assert out.returncode == 2 and "no study 'no-such-study-x'" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "runs").exists()


def test_artifacts_written_by_one_host_are_read_by_another(
    tmp_path: Path, grpc_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Host T creates the study with --artifacts; host A (`tunelab worker`, its own --save-dir, no
    flag: the study names its store) runs a queued trial; both are gone when host B pulls the
    study through the storage server and evaluates its best model."""
    from tests.reliability.common import TINY_BASE, invoke_main
    from tunelab.results.artifacts import linked_files
    from tunelab.tune import TuneOptions, study_from_mapping

    name = f"art-{uuid.uuid4().hex[:8]}"
    store = tmp_path / "store"
    store.mkdir()
    for host in ("t", "a", "b"):
        (tmp_path / host).mkdir()
    cfg = study_from_mapping(
        {"name": "t", "base": TINY_BASE, "space": {"train.lr": {"low": 1e-3, "high": 3e-2, "log": True}}}
        | {"sampler": "random", "budget": {"n_trials": 1}, "storage": grpc_url}
    )
    tune(cfg, TuneOptions(save_dir=tmp_path / "t", study_name=name, report=False, artifacts=str(store)))
    optuna.load_study(study_name=name, storage=str(POSTGRES)).enqueue_trial({"train.lr": 0.02})
    monkeypatch.setattr(owners, "_HOST_ID", None)  # restored after the test: it plays two hosts
    monkeypatch.setenv("TUNELAB_HOST_ID", "host-a")
    out = invoke_main(["worker", "--storage", grpc_url, "--study-name", name, "--save-dir", "runs"], cwd=tmp_path / "a")
    assert out.code == 0, out.output
    trials = _states(str(POSTGRES), name)
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert trials[1].system_attrs["tunelab:owner"].startswith("host-a|")
    assert (tmp_path / "a" / "runs" / name / trials[1].user_attrs["run_dir"] / "best_model.pt").is_file()
    assert all(linked_files(t) for t in trials)  # both hosts uploaded, host A without the flag
    shutil.rmtree(tmp_path / "t")
    shutil.rmtree(tmp_path / "a")

    monkeypatch.setenv("TUNELAB_HOST_ID", "host-b")
    out = invoke_main(["pull", "--storage", grpc_url, "--study-name", name, "--save-dir", "runs"], cwd=tmp_path / "b")
    assert out.code == 0, out.output
    pulled = tmp_path / "b" / "runs" / name
    for t in trials:
        assert (pulled / t.user_attrs["run_dir"] / "metrics.jsonl").is_file()
    assert (pulled / "best_model.pt").is_file() and (pulled / "report.html").is_file()
    assert len((pulled / "trials.csv").read_text().splitlines()) == 3
    out = invoke_main(["evaluate", str(pulled), "--json"], cwd=tmp_path / "b")
    assert out.code == 0 and '"test_acc"' in out.stdout, out.output
    optuna.delete_study(study_name=name, storage=str(POSTGRES))


def test_worker_refuses_a_bad_artifact_store_in_one_line(tmp_path: Path) -> None:
    out = run_cli(
        "worker", "--storage", str(POSTGRES), "--study-name", "any", "--artifacts", "no-such-dir", cwd=tmp_path
    )
    assert out.returncode == 2 and "--artifacts no-such-dir: no such directory" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "runs").exists()
