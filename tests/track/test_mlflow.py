"""MLflow: read the tracked study back with MlflowClient and through an `mlflow server`'s REST API."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from tests.track.conftest import PRUNE_AT, STUDY, TrackedStudy

pytest.importorskip("mlflow")

from mlflow.tracking import MlflowClient  # noqa: E402


def _uri(save_dir: Path) -> str:
    return f"sqlite:///{save_dir.resolve()}/mlflow.db"


@pytest.fixture(scope="module")
def client(tracked: TrackedStudy) -> MlflowClient:
    return MlflowClient(tracking_uri=_uri(tracked.save_dir))


def _runs(client: MlflowClient, experiment: str) -> dict[str, object]:
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"experiment {experiment} missing"
    return {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}


def test_study_is_an_experiment_with_a_parent_run_and_one_nested_run_per_trial(client: MlflowClient) -> None:
    runs = _runs(client, STUDY)
    assert set(runs) == {STUDY, "trial-0", "trial-1", "trial-2"}
    parent = runs[STUDY]
    assert "mlflow.parentRunId" not in parent.data.tags
    for name in ("trial-0", "trial-1", "trial-2"):
        assert runs[name].data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert runs[name].info.status == "FINISHED"
    # the study's resolved config is on the parent, as dotted params
    assert parent.data.params["objective"] == "val_acc"
    assert parent.data.params["base.model.hidden_dim"] == "8"
    assert parent.data.tags["phase"] == "coarse"


def test_trial_runs_hold_params_and_per_epoch_metric_history(client: MlflowClient, tracked: TrackedStudy) -> None:
    runs = _runs(client, STUDY)
    t0 = runs["trial-0"]
    trial = tracked.study.trials[0]
    assert float(t0.data.params["train.lr"]) == pytest.approx(trial.params["train.lr"])
    assert t0.data.params["model.hidden_dim"] == str(trial.params["model.hidden_dim"])
    assert int(t0.data.params["n_params"]) > 0 and t0.data.params["model.name"] == "gru"
    history = client.get_metric_history(t0.info.run_id, "val_loss")
    assert [m.step for m in history] == [1, 2, 3]
    lr_keys = [k for k in t0.data.metrics if k.startswith("lr/")]
    assert lr_keys, "learning rate per parameter group"
    assert len(client.get_metric_history(t0.info.run_id, lr_keys[0])) == 3
    assert {"grad_norm", "clip_frac", "train_loss", "val_acc", "test_acc", "best_val_acc"} <= set(t0.data.metrics)
    assert t0.data.metrics["test_acc"] == pytest.approx(trial.user_attrs["test_acc"])
    assert t0.data.tags["state"] == "COMPLETE" and t0.data.tags["epochs"] == "3" and t0.data.tags["model"] == "gru"
    assert "config.json" in {a.path for a in client.list_artifacts(t0.info.run_id)}


def test_pruned_trial_is_tagged_with_its_epoch(client: MlflowClient) -> None:
    pruned = _runs(client, STUDY)["trial-1"]
    assert pruned.data.tags["state"] == "PRUNED"
    assert pruned.data.tags["pruned_epoch"] == str(PRUNE_AT)
    assert [m.step for m in client.get_metric_history(pruned.info.run_id, "val_loss")] == list(range(1, PRUNE_AT + 1))
    assert "test_acc" not in pruned.data.metrics


def test_parent_run_holds_the_best_model_report_and_history(client: MlflowClient, tracked: TrackedStudy) -> None:
    parent = _runs(client, STUDY)[STUDY]
    assert {"best_model.pt", "report.html", "study_summary.json"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id)
    }
    best = client.get_metric_history(parent.info.run_id, "best_value")
    assert [m.step for m in best] == [0, 1, 2]  # best so far, after every trial
    assert [m.step for m in client.get_metric_history(parent.info.run_id, "value")] == [
        0,
        2,
    ]  # the pruned trial has none
    assert best[-1].value == pytest.approx(tracked.study.best_value)
    assert parent.data.tags["best_trial"] == str(tracked.study.best_trial.number)
    assert parent.data.tags["n_pruned"] == "1"
    assert parent.data.params[f"best_params.{next(iter(tracked.study.best_params))}"]


def test_a_single_train_run_is_one_run_without_parent(client: MlflowClient) -> None:
    runs = _runs(client, "tunelab")
    assert set(runs) == {"gru-single"}
    run = runs["gru-single"]
    assert "mlflow.parentRunId" not in run.data.tags
    assert run.data.tags["state"] == "COMPLETE"
    assert {"config.json", "summary.json", "best_model.pt"} <= {a.path for a in client.list_artifacts(run.info.run_id)}


def test_experiments_open_on_the_runs_table_not_the_genai_page(client: MlflowClient, tmp_path: Path) -> None:
    # MLflow 3's UI shows an untagged experiment as a GenAI one (an empty "Traces" page)
    for name in (STUDY, "tunelab"):
        exp = client.get_experiment_by_name(name)
        assert exp is not None and exp.tags.get("mlflow.experimentKind") == "custom_model_development"
    # an experiment made before (untagged) is tagged when tunelab reports to it again
    from tunelab.track import TrackingConfig
    from tunelab.track.mlflow import MlflowTracker

    uri = f"sqlite:///{tmp_path.resolve()}/old.db"
    old = MlflowClient(tracking_uri=uri)
    old.create_experiment("older")
    tracker = MlflowTracker(TrackingConfig(save_dir=tmp_path, mlflow=uri))
    tracker.start_study("older", {}, {})
    tracker.end_study(None, [])
    exp = old.get_experiment_by_name("older")
    assert exp is not None and exp.tags.get("mlflow.experimentKind") == "custom_model_development"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, body: dict[str, object] | None = None) -> dict[str, object]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def test_mlflow_server_answers_the_rest_api_for_the_study(tracked: TrackedStudy, tmp_path: Path) -> None:
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        _uri(tracked.save_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True)
    base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
    try:
        deadline, exp = time.monotonic() + 60, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                exp = _get(f"{base}/experiments/get-by-name?experiment_name={STUDY}")["experiment"]
                break
            except OSError:
                time.sleep(0.5)
        assert exp is not None, (tmp_path / "server.log").read_text()[-2000:]
        runs = _get(f"{base}/runs/search", {"experiment_ids": [exp["experiment_id"]]})["runs"]  # type: ignore[index]
        names = {r["info"]["run_name"] for r in runs}  # type: ignore[index]
        assert names == {STUDY, "trial-0", "trial-1", "trial-2"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server's own process group (it forks workers)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log.close()


def test_a_server_that_does_not_answer_is_refused_at_once(tmp_path: Path) -> None:
    from tunelab.errors import UserError
    from tunelab.track import TrackingConfig
    from tunelab.track.mlflow import MlflowTracker

    uri = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    with pytest.raises(UserError, match=f"--mlflow {uri}: cannot open .*ConnectionRefusedError"):
        MlflowTracker(TrackingConfig(mlflow=uri, save_dir=tmp_path))
