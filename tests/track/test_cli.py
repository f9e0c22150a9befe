"""The tracking flags of `tunelab train` and the `tunelab dashboard` command."""

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

import optuna
import pytest
from tests.helpers import cli_cmd, env, run_cli
from typer.testing import CliRunner

from tunelab.cli import app
from tunelab.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "data.name=synthetic_gestures",
    "data.options.n=60",
    "model.hidden_dim=4",
    "model.num_layers=1",
    "train.max_epochs=2",
]


def test_train_flags_report_to_each_tracker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mlflow")
    pytest.importorskip("wandb")
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.delenv("WANDB_API_KEY", raising=False)  # no key: W&B must go offline by itself
    args = [
        "train",
        *TINY,
        "--save-dir",
        str(tmp_path),
        "--name",
        "r1",
        "-q",
        "--mlflow",
        "--tensorboard",
        "--wandb-project",
        "tl-cli",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"mlflow ui --backend-store-uri sqlite:///{tmp_path.resolve()}/mlflow.db" in result.output
    assert "tensorboard --logdir" in result.output and "wandb sync" in result.output

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path.resolve()}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("tunelab").experiment_id])
    assert run.info.run_name == "r1" and run.data.params["data.name"] == "synthetic_gestures"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2]
    acc = EventAccumulator(str(tmp_path / "tensorboard" / "r1")).Reload()
    assert [e.step for e in acc.Scalars("val_loss")] == [1, 2]
    (wandb_run,) = (tmp_path / "wandb").glob("offline-run-*")
    assert list(wandb_run.glob("run-*.wandb"))


def test_a_tracking_flag_without_its_package_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)
    result = CliRunner().invoke(app, ["train", *TINY, "--save-dir", str(tmp_path), "--mlflow"])
    assert isinstance(result.exception, UserError)
    assert str(result.exception) == "MLflow tracking needs the mlflow package: pip install 'tunelab[mlflow]'"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tunelab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd, timeout=120)


def _study_dir(tmp_path: Path) -> Path:
    url = f"sqlite:///{tmp_path.resolve()}/tunelab.db"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="dash-study", storage=url, direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    study_dir = tmp_path / "dash-study"
    study_dir.mkdir()
    (study_dir / "study.json").write_text(json.dumps({"storage": url, "study_name": "dash-study"}))
    return study_dir


def test_dashboard_serves_the_study_over_http_on_loopback(tmp_path: Path) -> None:
    pytest.importorskip("optuna_dashboard")
    study_dir, port = _study_dir(tmp_path), _free_port()
    log = (tmp_path / "dashboard.log").open("w")
    cmd = cli_cmd("dashboard", str(study_dir), "--port", str(port))
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, studies = time.monotonic() + 60, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as resp:
                    studies = json.loads(resp.read())["study_summaries"]
                break
            except OSError:
                time.sleep(0.3)
        output = (tmp_path / "dashboard.log").read_text()
        assert studies is not None, output[-2000:]
        assert [s["study_name"] for s in studies] == ["dash-study"]
        assert f"http://127.0.0.1:{port}/dashboard/studies/{studies[0]['study_id']}" in output
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the process group this test started
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log.close()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["nowhere"], "study directory not found"),
        (["--storage", "sqlite:///missing.db"], "missing.db not found"),
    ],
)
def test_dashboard_refuses_what_it_cannot_open(tmp_path: Path, args: list[str], needle: str) -> None:
    done = _tunelab("dashboard", *args, cwd=tmp_path)
    assert done.returncode == 2 and needle in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "missing.db").exists()  # never creates an empty database
