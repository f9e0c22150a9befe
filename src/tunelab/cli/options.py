"""Flags shared by several commands, the tracking flags → a TrackingConfig, and small formatting helpers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from tunelab.errors import UserError

PluginOpt = Annotated[
    list[str] | None, typer.Option("--plugin", help="python file or module that registers models/datasets (repeatable)")
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="experiment YAML/JSON file")]
OverridesArg = Annotated[
    list[str] | None, typer.Argument(help="dotted overrides, e.g. train.lr=3e-4 model.hidden_dim=128")
]
SaveDirOpt = Annotated[Path, typer.Option("--save-dir", help="where runs and studies are written")]
EpochsOpt = Annotated[int | None, typer.Option("--epochs", help="train.max_epochs")]
PatienceOpt = Annotated[int | None, typer.Option("--patience", help="train.early_stopping.patience")]
BatchOpt = Annotated[int | None, typer.Option("--batch-size", help="train.batch_size")]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="auto | cpu | cuda | cuda:N | mps")]
DataPathOpt = Annotated[str | None, typer.Option("--data-path", help="data file or folder (.ts/.npz/.csv/.parquet)")]
DatasetOpt = Annotated[str | None, typer.Option("--dataset", help="built-in dataset name (see `tunelab datasets`)")]
ClassesOpt = Annotated[int | None, typer.Option("--classes", help="keep the N most frequent classes")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="random seed")]
MlflowOpt = Annotated[
    bool,
    typer.Option(
        "--mlflow",
        help="log to MLflow: sqlite:///<save-dir>/mlflow.db (see `mlflow ui --backend-store-uri`) unless --mlflow-uri",
    ),
]
MlflowUriOpt = Annotated[
    str | None,
    typer.Option(
        "--mlflow-uri", metavar="URI", help="MLflow tracking URI, e.g. http://127.0.0.1:5000 (implies --mlflow)"
    ),
]
WandbOpt = Annotated[
    bool,
    typer.Option(
        "--wandb", help="log to Weights & Biases (offline under <save-dir>/wandb unless WANDB_API_KEY is set)"
    ),
]
WandbProjectOpt = Annotated[
    str | None, typer.Option("--wandb-project", help="W&B project (implies --wandb; default tunelab)")
]
WandbEntityOpt = Annotated[str | None, typer.Option("--wandb-entity", help="W&B user or team (implies --wandb)")]
WandbGroupOpt = Annotated[
    str | None, typer.Option("--wandb-group", help="W&B run group (implies --wandb; default: the study name)")
]
TensorboardOpt = Annotated[
    bool, typer.Option("--tensorboard", help="write TensorBoard scalars under <save-dir>/tensorboard")
]


def tracking_config(
    save_dir: Path,
    *,
    mlflow: bool = False,
    mlflow_uri: str | None = None,
    wandb: bool = False,
    wandb_project: str | None = None,
    wandb_entity: str | None = None,
    wandb_group: str | None = None,
    tensorboard: bool = False,
) -> Any:
    """The TrackingConfig of the tracking flags.  The CLI, not the library, reads the environment:
    W&B runs online only when WANDB_API_KEY is set."""
    import os

    from tunelab.track import TrackingConfig, WandbConfig

    wb = WandbConfig(
        enabled=wandb or any(v is not None for v in (wandb_project, wandb_entity, wandb_group)),
        project=wandb_project or "tunelab",
        entity=wandb_entity,
        group=wandb_group,
        mode="online" if os.environ.get("WANDB_API_KEY") else "offline",
    )
    return TrackingConfig(
        save_dir=save_dir, mlflow=mlflow_uri or ("auto" if mlflow else None), wandb=wb, tensorboard=tensorboard
    )


def tracking_hints(tracking: Any) -> list[str]:
    """Where each enabled tracker put the data, and how to open it."""
    hints = []
    if tracking.mlflow is not None:
        uri = tracking.mlflow_uri
        hints.append(f"MLflow: mlflow ui --backend-store-uri {uri}" if uri.startswith("sqlite:") else f"MLflow: {uri}")
    if tracking.wandb.enabled and tracking.wandb.mode == "offline":
        hints.append(f"W&B (offline): wandb sync {tracking.save_dir / 'wandb'}/offline-run-*")
    if tracking.tensorboard:
        hints.append(f"TensorBoard: tensorboard --logdir {tracking.save_dir / 'tensorboard'}")
    return hints


def print_tracking_hints(console: Any, tracking: Any) -> None:
    """Print :func:`tracking_hints` (none when tracking is off), whole lines that stay copy-pastable."""
    for hint in tracking_hints(tracking):
        console.print(hint, highlight=False, soft_wrap=True)


#: the seed scripts' flags that set a config key, and the tracking flags (a command's flags by name)
SEED_FLAGS = ("epochs", "patience", "batch_size", "device", "data_path", "dataset", "classes", "seed")
TRACKING_FLAGS = ("mlflow", "mlflow_uri", "wandb", "wandb_project", "wandb_entity", "wandb_group", "tensorboard")


def seed_overrides(flags: dict[str, Any], first: tuple[str, ...] = ()) -> list[str]:
    """Dotted overrides of a command's seed-compatible flags (``first`` ones first: model.name)."""
    return flag_overrides(**{k: flags[k] for k in (*first, *SEED_FLAGS) if k in flags})


def tracking_from(save_dir: Path, flags: dict[str, Any]) -> Any:
    """The TrackingConfig of a command's tracking flags."""
    return tracking_config(save_dir, **{k: flags[k] for k in TRACKING_FLAGS})


def flag_overrides(**flags: object) -> list[str]:
    """Dotted overrides for the seed-compatible flags that were given."""
    keys = {
        "epochs": "train.max_epochs",
        "patience": "train.early_stopping.patience",
        "batch_size": "train.batch_size",
        "device": "device",
        "data_path": "data.path",
        "dataset": "data.name",
        "classes": "data.classes",
        "seed": "seed",
        "model": "model.name",
        "lr": "train.lr",
    }
    return [f"{keys[k]}={v}" for k, v in flags.items() if v is not None]


def writable(path: Path) -> Path:
    """Fail now, not after training, where ``--save-dir`` cannot be written; creates nothing (what
    writes there creates it), so a run stopped by bad input leaves no empty folder."""
    here = path.absolute()
    existing = next(p for p in (here, *here.parents) if p.exists())
    if not existing.is_dir():
        reason = f"{existing} is a file"
    elif not os.access(existing, os.W_OK | os.X_OK):
        reason = f"no permission to write in {existing}"
    else:
        return path
    raise UserError(f"--save-dir {path}: not writable ({reason}); choose a directory you can write to")


def fmt(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
