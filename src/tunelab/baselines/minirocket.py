"""MiniRocket (Dempster et al. 2021) as a non-deep reference row, in PyTorch (CPU or CUDA).

The pipeline is aeon's ``MiniRocketClassifier``/``MiniRocketRegressor``: the MiniRocket transform
(about 10,000 features from random dilated convolutions, ``baselines/transform.py``), scaling
without centring, and a ridge model whose alpha is chosen by leave-one-out cross-validation on the
train split (``baselines/ridge.py``, scikit-learn's ``RidgeClassifierCV``/``RidgeCV`` arithmetic).
Nothing beyond torch and numpy: it runs wherever tunelab does, on the study's device (MPS, which
has no float64 for the ridge, falls back to the CPU).

Variable lengths: MiniRocket takes equal-length series, so every split is zero-padded to one
common length (the longest sequence of any split, and at least the transform's minimum of 9
steps).  Zero is what the deep models see beyond each sequence's end too, and after the default
per-channel normalisation it is the channel's mean, so the padding adds no signal of its own.
Metrics use the trainer's names and definitions (``val_acc``, ``val_f1``, ``test_acc``,
``test_f1``; ``val_mse``, ``val_mae``, ...), computed by ``tunelab.train.metrics``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from tunelab.baselines import transform as mr
from tunelab.baselines.ridge import RidgeFit, fit_ridge, fit_ridge_classifier
from tunelab.errors import UserError

__all__ = [
    "MIN_LENGTH",
    "ReferenceResult",
    "fit_minirocket",
    "minirocket_available",
    "reference_row",
    "to_panel",
]

log = logging.getLogger(__name__)

NAME = "MiniRocket"
DEFAULT_KERNELS = 10_000  # the paper's feature count
MIN_LENGTH = mr.MIN_LENGTH  # MiniRocket's kernels span 9 steps


@dataclass
class ReferenceResult:
    """A fitted reference: metrics named like the trainer's, its size and its time."""

    name: str
    task: str
    metrics: dict[str, float]
    n_params: int  # ridge coefficients and intercepts
    n_features: int
    fit_seconds: float  # transform + ridge fit on the train split
    seconds: float  # fit plus predicting val and test
    padded_length: int
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        """The flat table row ``reference_row`` returns."""
        return {
            "name": self.name,
            "status": "ok",
            "task": self.task,
            **self.metrics,
            "n_params": self.n_params,
            "n_features": self.n_features,
            "fit_seconds": round(self.fit_seconds, 3),
            "seconds": round(self.seconds, 3),
            "padded_length": self.padded_length,
        }


def minirocket_available() -> bool:
    """True: MiniRocket needs only torch (it once needed aeon; callers may still ask)."""
    return True


def to_panel(x: Tensor, lengths: Tensor, length: int) -> Tensor:
    """``x [N, T, C]`` as a ``[N, C, length]`` float32 panel on ``x``'s device, zero beyond each row's length."""
    n, t, c = x.shape
    mask = (torch.arange(t, device=x.device)[None, :] < lengths.to(x.device)[:, None]).unsqueeze(-1)
    z = (x.detach().float() * mask)[:, :length]
    out = torch.zeros(n, c, length, device=x.device)
    out[:, :, : z.shape[1]] = z.transpose(1, 2)
    return out


def _device(device: str | torch.device | None, splits: Any) -> torch.device:
    """Where to fit: ``device`` (resolved as the trainer does) or the splits' own; MPS has no
    float64 for the ridge, so it falls back to the CPU."""
    from tunelab.train.device import resolve_device

    dev = splits.train.x.device if device is None else resolve_device(str(device))
    return torch.device("cpu") if dev.type == "mps" else dev


def _clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def fit_minirocket(
    splits: Any,
    *,
    n_kernels: int = DEFAULT_KERNELS,
    seed: int = 0,
    keep_decisions: bool = False,
    device: str | torch.device | None = None,
) -> ReferenceResult:
    """Fit MiniRocket + ridge on ``splits.train``; report val/test metrics and fit time.

    With ``keep_decisions`` (classification), ``extra["decisions"]`` holds the ridge decision
    values on val and test as ``[N, n_classes]`` float tensors (CPU), usable as (uncalibrated)
    logits; a two-class ridge's one decision value d becomes ``[-d/2, d/2]``.

    ``splits`` is a prepared ``Splits`` (``tunelab.data.prepare``); ``device`` (``auto``, ``cpu``,
    ``cuda``...) defaults to the splits' device.  Raises a UserError for seq2seq data (MiniRocket
    labels whole sequences).
    """
    from tunelab.train.metrics import classification_metrics, regression_metrics

    meta = splits.meta
    if meta.task == "seq2seq":
        raise UserError(
            f"{meta.name}: MiniRocket labels whole sequences and has no reference for seq2seq (denoising) data"
        )
    dev = _device(device, splits)
    parts = {name: getattr(splits, name) for name in ("train", "val", "test")}
    length = max(MIN_LENGTH, *(int(d.lengths.max()) for d in parts.values() if len(d)))
    panels = {name: to_panel(d.x.to(dev), d.lengths, length) for name, d in parts.items() if len(d)}
    classify = meta.task == "classification"

    t0 = _clock(dev)
    params = mr.fit(panels["train"], n_kernels, seed)
    features = mr.transform(panels["train"], params)
    y_train = parts["train"].y.to(dev)
    ridge = fit_ridge_classifier(features, y_train) if classify else fit_ridge(features, y_train.double())
    fit_seconds = _clock(dev) - t0

    metrics: dict[str, float] = {}
    decisions: dict[str, Tensor] = {}
    for name in ("val", "test"):
        if name not in panels:
            continue
        f = mr.transform(panels[name], params)
        pred = ridge.predict(f).cpu()
        y = parts[name].y.cpu()
        if classify and keep_decisions:
            decisions[name] = _decision_logits(ridge, f, meta.n_classes)
        if classify:
            # one-hot "logits": the metrics take the argmax, which is the ridge prediction
            onehot = torch.nn.functional.one_hot(pred.long(), meta.n_classes).float()
            found = classification_metrics(onehot, y.long(), meta.n_classes)
        else:
            found = regression_metrics(pred.float().reshape(y.shape), y.float(), scale=parts[name].y_scale)
        metrics |= {f"{name}_{k}": v for k, v in found.items()}
    return ReferenceResult(
        name=NAME,
        task=meta.task,
        metrics=metrics,
        n_params=ridge.n_params,
        n_features=params.n_features,
        fit_seconds=fit_seconds,
        seconds=_clock(dev) - t0,
        padded_length=length,
        extra={
            "alpha": ridge.alpha,
            "n_kernels": n_kernels,
            "device": str(dev),
            **({"decisions": decisions} if decisions else {}),
        },
    )


def _decision_logits(ridge: RidgeFit, features: Tensor, n_classes: int) -> Tensor:
    """The ridge's decision values as ``[N, n_classes]`` logits (CPU), columns in class-index order."""
    d = ridge.decision(features).float().cpu()
    assert ridge.classes is not None
    classes = ridge.classes.cpu()
    if d.shape[1] == 1 and len(classes) == 2:  # two classes seen in training: d > 0 means classes[1]
        d = torch.cat([-d / 2, d / 2], 1)
    out = torch.full((d.shape[0], n_classes), -1e4)  # a class never seen in training is never predicted
    out[:, classes] = d
    return out


def reference_row(cfg: Any, *, data: Any | None = None, n_kernels: int = DEFAULT_KERNELS) -> dict[str, Any]:
    """The MiniRocket reference row for experiment config ``cfg``, on the same splits it trains on
    and on its device (``cfg.device``).

    Always returns a flat dict with ``name`` and ``status``:
    ``"ok"`` — with the metrics (``val_acc``, ``test_f1``, ... as the trainer names them),
    ``n_params``, ``fit_seconds`` and ``seconds``;
    ``"not_applicable"`` — seq2seq data, ``hint`` says why.
    ``data`` is a prepared ``Splits``; by default ``tunelab.data.prepare(cfg.data, cfg.seed)``.
    """
    if data is None:
        from tunelab.data import prepare

        data = prepare(cfg.data, cfg.seed)
    if data.meta.task == "seq2seq":
        return {
            "name": NAME,
            "status": "not_applicable",
            "hint": "MiniRocket labels whole sequences; no reference for seq2seq data",
        }
    return fit_minirocket(data, n_kernels=n_kernels, seed=cfg.seed, device=cfg.device).row()
