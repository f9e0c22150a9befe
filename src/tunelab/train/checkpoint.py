"""Reload a trained model from a run directory or checkpoint, and re-evaluate it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from tunelab.config import ExperimentConfig, validate_config
from tunelab.errors import UserError
from tunelab.models import build_model
from tunelab.results.io import load_checkpoint

__all__ = ["evaluate_checkpoint", "load_model"]


def _checkpoint_path(path: str | Path) -> Path:
    p = Path(path)
    if p.is_dir():
        for name in ("best_model.pt", "checkpoint.pt"):
            if (p / name).is_file():
                return p / name
        raise UserError(f"{p}: no best_model.pt in this directory; pass a run or study directory written by tunelab")
    return p


def load_model(path: str | Path, meta: Any) -> tuple[nn.Module, ExperimentConfig, dict[str, Any]]:
    """Build the checkpoint's model for data ``meta`` and load its weights (never unpickles)."""
    state, config, extra = load_checkpoint(_checkpoint_path(path))
    cfg = validate_config(config, f"{path} (saved config)")
    model = build_model(cfg.model, meta)
    model.load_state_dict(state)
    return model, cfg, extra


def _data_here(cfg: ExperimentConfig, run: str | Path, data_path: str | Path | None) -> ExperimentConfig:
    """``cfg`` with a data path that exists here: ``data_path`` if given, else the saved one, else
    a file of the saved name in the working directory (a study copied from another machine)."""
    saved = cfg.data.path
    if data_path is None and (saved is None or Path(saved).exists()):
        return cfg
    if data_path is not None:
        found = Path(data_path).expanduser().absolute()
        if not found.exists():
            raise UserError(f"--data-path {data_path}: no such file or folder")
    else:
        found = Path.cwd() / Path(str(saved)).name
        if not found.exists():
            raise UserError(
                f"data.path {saved} (saved in {run}): no such file or folder here; "
                "point at the data with --data-path PATH"
            )
    return cfg.model_copy(update={"data": cfg.data.model_copy(update={"path": str(found)})})


def evaluate_checkpoint(
    path: str | Path, device: str = "auto", data_path: str | Path | None = None
) -> dict[str, float]:
    """Test-only evaluation (seed 001's --test-only): rebuild the data split and report metrics.
    The data is ``data_path`` if given, else the saved ``data.path`` (or its file name in the
    working directory when the study was copied from elsewhere)."""
    from tunelab.data import prepare
    from tunelab.train.device import resolve_device
    from tunelab.train.losses import build_loss
    from tunelab.train.metrics import expected_calibration_error
    from tunelab.train.trainer import evaluate

    state, config, extra = load_checkpoint(_checkpoint_path(path))
    cfg = _data_here(validate_config(config, f"{path} (saved config)"), path, data_path)
    splits = prepare(cfg.data, cfg.seed)
    dev = resolve_device(device if device != "auto" else cfg.device)
    model = build_model(cfg.model, splits.meta)
    model.load_state_dict(state)
    model.to(dev)
    loss_fn = build_loss(cfg.loss, splits.meta, splits.train.y).to(dev)
    out: dict[str, float] = {}
    for split_name, data in (("val", splits.val), ("test", splits.test)):
        metrics, outputs = evaluate(model, data.to(dev), loss_fn, amp=cfg.train.amp)
        out |= {f"{split_name}_{k}": v for k, v in metrics.items()}
        if split_name == "test" and splits.meta.task == "classification" and len(data):
            t = float(extra.get("temperature", 1.0))
            out["test_ece"] = expected_calibration_error(outputs, data.y.to(dev))
            out["test_ece_scaled"] = expected_calibration_error(outputs / t, data.y.to(dev))
    return out
