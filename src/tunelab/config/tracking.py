"""Which trackers a run or study reports to: one small typed section, built by the CLI from flags.

Nothing here reads the environment: the CLI decides, e.g., whether W&B runs online (an API key is
set) or offline, and passes the decision in :class:`WandbConfig.mode`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from tunelab.config.base import StrictModel

__all__ = ["AUTO", "TrackingConfig", "WandbConfig"]

AUTO = "auto"  # the --mlflow value meaning "a local SQLite database under the save directory"


class WandbConfig(StrictModel):
    """Weights & Biases: where runs go and how they are grouped."""

    enabled: bool = Field(default=False, description="log runs to W&B (--wandb)")
    project: str = Field(default="tunelab", description="W&B project (--wandb-project)")
    entity: str | None = Field(default=None, description="W&B user or team (--wandb-entity)")
    group: str | None = Field(default=None, description="run group; a study's name by default (--wandb-group)")
    mode: Literal["online", "offline", "disabled"] = Field(
        default="offline", description="offline writes files under <save_dir>/wandb to sync later"
    )


class TrackingConfig(StrictModel):
    """Trackers to report to.  All off by default; the always-on records (metrics.jsonl, trials.csv)
    are written by ``results/`` regardless."""

    save_dir: Path = Field(
        default=Path("runs"), description="the top-level save directory (--save-dir); local tracker files go under it"
    )
    mlflow: str | None = Field(
        default=None, description="MLflow tracking URI, or 'auto' for sqlite:///<save_dir>/mlflow.db (--mlflow [URI])"
    )
    wandb: WandbConfig = Field(default_factory=lambda: WandbConfig())
    tensorboard: bool = Field(
        default=False, description="write TensorBoard scalars under <save_dir>/tensorboard (--tensorboard)"
    )
    experiment: str = Field(
        default="tunelab", description="MLflow experiment of single `train` runs (a study uses its own name)"
    )

    @property
    def enabled(self) -> bool:
        """True when at least one tracker is on."""
        return self.mlflow is not None or (self.wandb.enabled and self.wandb.mode != "disabled") or self.tensorboard

    @property
    def mlflow_uri(self) -> str | None:
        """The resolved MLflow tracking URI (None when MLflow is off)."""
        if self.mlflow is None:
            return None
        if self.mlflow in ("", AUTO):
            return f"sqlite:///{(self.save_dir / 'mlflow.db').resolve()}"
        return self.mlflow

    @property
    def mlflow_artifacts(self) -> str:
        """Where a local MLflow backend keeps artifacts: <save_dir>/mlartifacts."""
        return (self.save_dir / "mlartifacts").resolve().as_uri()
