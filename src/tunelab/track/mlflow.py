"""MLflow: experiment = study, one parent run per study, one nested run per trial.

By default the backend is a SQLite file under the save directory, so ``mlflow ui
--backend-store-uri sqlite:///runs/mlflow.db`` opens it, with artifacts under ``runs/mlartifacts``.
We use ``MlflowClient`` (explicit run ids) rather than MLflow's fluent API, whose single "active
run" per thread cannot hold a study's parent run and parallel trial runs at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.errors import UserError
from tunelab.track.base import FAILED, FINISHED, PRUNED, flatten, require

if TYPE_CHECKING:
    from tunelab.config.tracking import TrackingConfig
    from tunelab.track.summary import StudySummary

__all__ = ["MlflowRun", "MlflowTracker"]

log = logging.getLogger(__name__)

_PARENT = "mlflow.parentRunId"  # MLflow's tag for nesting runs
# MLflow 3 opens an untagged experiment on its GenAI (traces) page; this tag makes it open on the
# runs table, as an experiment of trained models (the value is MLflow's ExperimentKind.CUSTOM_MODEL_DEVELOPMENT).
_KIND = "mlflow.experimentKind"
_MODEL_TRAINING = "custom_model_development"
_MAX_VALUE = 6000  # MLflow's limit on a parameter value's length
_BATCH = 100  # MLflow accepts at most 100 params per log_batch call


def _now_ms() -> int:
    return int(time.time() * 1000)


def _status(status: str) -> str:
    # MLflow's run statuses have no "pruned": a pruned trial finished normally (its state tag says PRUNED).
    return {FINISHED: "FINISHED", PRUNED: "FINISHED", FAILED: "FAILED"}.get(status, "FINISHED")


class MlflowRun:
    """One MLflow run, addressed by id."""

    def __init__(self, client: Any, run_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self._ended = False

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        ts = _now_ms()
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), ts, step) for k, v in metrics.items()])

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:_MAX_VALUE]) for k, v in params.items()]
        for i in range(0, len(items), _BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + _BATCH])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)[:_MAX_VALUE]) for k, v in tags.items()])

    def log_artifact(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def end(self, status: str = FINISHED) -> None:
        if not self._ended:
            self._ended = True
            self.client.set_terminated(self.run_id, _status(status))


def _answers(uri: str, timeout: float = 5.0) -> None:
    """Raise ``OSError`` if an http(s) tracking server does not accept a connection."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.scheme in ("http", "https") and parts.hostname:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        socket.create_connection((parts.hostname, port), timeout=timeout).close()


class MlflowTracker:
    """Reports to an MLflow tracking server or database (``--mlflow [URI]``)."""

    name = "mlflow"

    def __init__(self, cfg: TrackingConfig) -> None:
        require("mlflow", "mlflow", "mlflow", "MLflow tracking")
        from mlflow.tracking import MlflowClient

        self.uri = cfg.mlflow_uri or ""
        local = self.uri.startswith("sqlite:")
        if local:
            cfg.save_dir.mkdir(parents=True, exist_ok=True)
        # A local database keeps its artifacts beside it; a server decides for itself.
        self.artifact_location = cfg.mlflow_artifacts if local else None
        try:
            _answers(self.uri)  # seconds, where MLflow's client retries a dead server for minutes
            self.client = MlflowClient(tracking_uri=self.uri)
            self.client.search_experiments(max_results=1)  # fail now, not after an hour of training
        except Exception as exc:
            raise UserError(
                f"--mlflow {self.uri}: cannot open the MLflow tracking store ({type(exc).__name__}: {exc}); pass a reachable URI or omit it for a local database"
            ) from None
        self.default_experiment = cfg.experiment
        self.experiment_id: str | None = None
        self.parent: MlflowRun | None = None

    def _experiment(self, name: str) -> str:
        exp = self.client.get_experiment_by_name(name)
        if exp is None:
            try:
                return str(
                    self.client.create_experiment(
                        name, artifact_location=self.artifact_location, tags={_KIND: _MODEL_TRAINING}
                    )
                )
            except Exception:  # another worker created it first
                exp = self.client.get_experiment_by_name(name)
                if exp is None:
                    raise
        if _KIND not in exp.tags:  # made before tunelab tagged its experiments, or by someone else
            self.client.set_experiment_tag(exp.experiment_id, _KIND, _MODEL_TRAINING)
        return str(exp.experiment_id)

    def start_study(self, name: str, config: Mapping[str, Any], tags: Mapping[str, Any]) -> None:
        self.experiment_id = self._experiment(name)
        run = self.client.create_run(
            self.experiment_id, run_name=name, tags={"kind": "study", **{k: str(v) for k, v in tags.items()}}
        )
        self.parent = MlflowRun(self.client, run.info.run_id)
        self.parent.log_params(flatten(config))

    def start_run(
        self, name: str, params: Mapping[str, Any], tags: Mapping[str, Any], nested: bool = False
    ) -> MlflowRun:
        if self.experiment_id is None:
            self.experiment_id = self._experiment(self.default_experiment)
        run_tags = {k: str(v) for k, v in tags.items()}
        if nested and self.parent is not None:
            run_tags[_PARENT] = self.parent.run_id
        info = self.client.create_run(self.experiment_id, run_name=name, tags=run_tags).info
        run = MlflowRun(self.client, info.run_id)
        run.log_params(params)
        return run

    def end_study(self, summary: StudySummary | None, artifacts: Sequence[Path], status: str = FINISHED) -> None:
        parent, self.parent = self.parent, None
        if parent is None:
            return
        try:
            if summary is not None:
                self._log_summary(parent, summary)
            for path in artifacts:
                if Path(path).is_file():
                    parent.log_artifact(Path(path))
        finally:
            parent.end(status)

    def _log_summary(self, parent: MlflowRun, summary: StudySummary) -> None:
        from mlflow.entities import Metric

        ts = _now_ms()
        # The optimization history as metric curves over trial numbers.
        history = [Metric("value", r.value, ts, r.number) for r in summary.trials if r.value is not None]
        history += [
            Metric("best_value", r.best_value, ts, r.number) for r in summary.trials if r.best_value is not None
        ]
        history += [Metric(f"importance/{k}", v, ts, 0) for k, v in summary.importances.items()]
        for i in range(0, len(history), 1000):  # MLflow's per-batch metric limit
            self.client.log_batch(parent.run_id, metrics=history[i : i + 1000])
        states = summary.states
        parent.set_tags(
            {
                "n_trials": len(summary.trials),
                "n_complete": states.get("COMPLETE", 0),
                "n_pruned": states.get("PRUNED", 0),
                "n_failed": states.get("FAIL", 0),
                "best_trial": summary.best_number,
                "best_value": summary.best_value,
            }
        )
        parent.log_params({f"best_params.{k}": v for k, v in summary.best_params.items()})
        self.client.log_dict(parent.run_id, summary.to_dict(), "study_summary.json")
