"""Weights & Biases: one run per trial, grouped by study, plus a study-level summary run.

The summary run carries the optimization history (table + line chart), the parameter importance
table (+ bar chart) and a trials table whose columns are the sampled parameters and the value
(W&B's parallel-coordinates panel reads it, as it reads the grouped trial runs' config/summary).
Offline mode (no API key) writes ``<save_dir>/wandb/offline-run-*`` for ``wandb sync`` later.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.track.base import FINISHED, flatten, require

if TYPE_CHECKING:
    from tunelab.config.tracking import TrackingConfig
    from tunelab.track.summary import StudySummary

__all__ = ["WandbRun", "WandbTracker"]

log = logging.getLogger(__name__)


class WandbRun:
    """One W&B run.  Tags become summary fields (W&B's own tags are plain labels)."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self._ended = False

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self.run.log(dict(metrics), step=step)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        fields: dict[str, Any] = dict(tags)
        if "state" in fields:
            fields["pruned"] = fields["state"] == "PRUNED"
        if "epochs" in fields:
            fields["epochs_trained"] = fields["epochs"]
        self.run.summary.update(fields)

    def log_artifact(self, path: Path) -> None:
        # A copy in the run's files folder is uploaded with the run (and by `wandb sync` offline);
        # `run.save` would symlink instead, and later writes to the source would leak in.
        shutil.copy2(path, Path(self.run.dir) / Path(path).name)

    def end(self, status: str = FINISHED) -> None:
        if not self._ended:
            self._ended = True
            self.run.finish(exit_code=1 if status == "FAILED" else 0)


class WandbTracker:
    """Reports to W&B (``--wandb``); online or offline as the config's ``mode`` says."""

    name = "wandb"

    def __init__(self, cfg: TrackingConfig) -> None:
        self.wandb = require("wandb", "wandb", "wandb", "W&B tracking")
        self.cfg = cfg.wandb
        self.dir = cfg.save_dir
        self.group = cfg.wandb.group
        self.study: str | None = None
        self.study_config: dict[str, Any] = {}

    def _init(self, name: str, config: Mapping[str, Any], job_type: str, group: str | None) -> Any:
        self.dir.mkdir(parents=True, exist_ok=True)
        settings = self.wandb.Settings(
            console="off",  # leave our stdout alone (W&B would otherwise wrap it)
            silent=True,
            x_disable_stats=True,  # no system-metrics sampling thread per trial
            disable_git=True,
            save_code=False,
        )
        return self.wandb.init(
            project=self.cfg.project,
            entity=self.cfg.entity,
            group=group,
            name=name,
            job_type=job_type,
            config=dict(config),
            dir=str(self.dir),
            mode=self.cfg.mode,
            reinit="create_new",
            settings=settings,
        )

    def start_study(self, name: str, config: Mapping[str, Any], tags: Mapping[str, Any]) -> None:
        self.study = name
        self.group = self.cfg.group or name
        self.study_config = flatten(config) | {f"tag.{k}": v for k, v in tags.items()}

    def start_run(
        self, name: str, params: Mapping[str, Any], tags: Mapping[str, Any], nested: bool = False
    ) -> WandbRun:
        run = WandbRun(
            self._init(name, params, "trial" if nested else "train", self.group if nested else self.cfg.group)
        )
        run.set_tags(tags)
        return run

    def end_study(self, summary: StudySummary | None, artifacts: Sequence[Path], status: str = FINISHED) -> None:
        if self.study is None:
            return
        if summary is None and not artifacts:
            self.study = None
            return
        run = WandbRun(self._init(f"{self.study}-summary", self.study_config, "study", self.group))
        try:
            if summary is not None:
                self._log_summary(run.run, summary)
            for path in artifacts:
                if Path(path).is_file():
                    run.log_artifact(Path(path))
        finally:
            run.end(status)
            self.study = None

    def _log_summary(self, run: Any, summary: StudySummary) -> None:
        wandb = self.wandb
        names = summary.param_names
        history = wandb.Table(
            columns=["trial", "state", "value", "best_value", "epochs", *names],
            data=[
                [r.number, r.state, r.value, r.best_value, r.epochs, *(_cell(r.params.get(n)) for n in names)]
                for r in summary.trials
            ],
        )
        importance = wandb.Table(columns=["param", "importance"], data=[[k, v] for k, v in summary.importances.items()])
        complete = [r for r in summary.trials if r.value is not None]
        parallel = wandb.Table(
            columns=[*names, "value"], data=[[*(_cell(r.params.get(n)) for n in names), r.value] for r in complete]
        )
        run.log(
            {
                "optimization_history": history,
                "optimization_history_chart": wandb.plot.line(
                    history, "trial", "best_value", title="Optimization history (best so far)"
                ),
                "param_importances": importance,
                "param_importances_chart": wandb.plot.bar(
                    importance, "param", "importance", title="Parameter importance"
                ),
                "parallel_coordinates": parallel,
            }
        )
        states = summary.states
        run.summary.update(
            {
                "best_value": summary.best_value,
                "best_trial": summary.best_number,
                "n_trials": len(summary.trials),
                "n_complete": states.get("COMPLETE", 0),
                "n_pruned": states.get("PRUNED", 0),
                "best_params": summary.best_params,
            }
        )


def _cell(value: Any) -> Any:
    # Table columns need one type per column; categorical choices may mix None/str/numbers.
    return value if isinstance(value, (int, float, str)) or value is None else str(value)
