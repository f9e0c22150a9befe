"""MiniRocket (Dempster et al. 2021) as a non-deep reference row, from aeon (``tunelab[baselines]``).

The pipeline is aeon's ``MiniRocketClassifier``/``MiniRocketRegressor``: the MiniRocket transform
(about 10,000 features from random dilated convolutions), scaling without centring, and a ridge
model whose alpha is chosen by leave-one-out cross-validation on the train split.  It is built here
from aeon's transform and scikit-learn's ridge so multi-output regression works the same way.

Variable lengths: aeon's MiniRocket needs equal-length series, so every split is zero-padded to
one common length (the longest sequence of any split, and at least the transform's minimum of 9
steps).  Zero is what the deep models see beyond each sequence's end too, and after the default
per-channel normalisation it is the channel's mean, so the padding adds no signal of its own.
Metrics use the trainer's names and definitions (``val_acc``, ``val_f1``, ``test_acc``,
``test_f1``; ``val_mse``, ``val_mae``, ...), computed by ``tunelab.train.metrics``.
"""

from __future__ import annotations

import importlib.util
import logging
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tunelab.errors import UserError

__all__ = [
    "HINT",
    "MIN_LENGTH",
    "ReferenceResult",
    "fit_minirocket",
    "minirocket_available",
    "reference_row",
    "to_panel",
]

log = logging.getLogger(__name__)

HINT = "pip install 'tunelab[baselines]'"
NAME = "MiniRocket"
MIN_LENGTH = 9  # MiniRocket's kernels span 9 steps
ALPHAS = np.logspace(-3, 3, 10)  # aeon's ridge grid


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
    """True when aeon (and with it scikit-learn) can be imported."""
    return importlib.util.find_spec("aeon") is not None and importlib.util.find_spec("sklearn") is not None


def _require() -> Any:
    """aeon's MiniRocket transform, or a UserError with the install hint."""
    if not minirocket_available():
        raise UserError(f"the MiniRocket reference needs aeon, which is not installed: {HINT}")
    try:
        from aeon.transformations.collection.convolution_based import MiniRocket
    except ImportError as exc:  # installed but broken (e.g. a numba/numpy mismatch)
        raise UserError(f"the MiniRocket reference needs aeon, which failed to import ({exc}): {HINT}") from None
    return MiniRocket


def to_panel(x: torch.Tensor, lengths: torch.Tensor, length: int) -> np.ndarray:
    """``x [N, T, C]`` as aeon's ``[N, C, length]`` float64 panel, zero beyond each row's length."""
    n, t, c = x.shape
    mask = (torch.arange(t)[None, :] < lengths.cpu()[:, None]).unsqueeze(-1)
    z = (x.detach().float().cpu() * mask)[:, :length]
    out = np.zeros((n, c, length), dtype=np.float64)
    out[:, :, : z.shape[1]] = z.transpose(1, 2).numpy()
    return out


def fit_minirocket(
    splits: Any, *, n_kernels: int = 10_000, seed: int = 0, n_jobs: int = 1, keep_decisions: bool = False
) -> ReferenceResult:
    """Fit MiniRocket + ridge on ``splits.train``; report val/test metrics and fit time.

    With ``keep_decisions`` (classification), ``extra["decisions"]`` holds the ridge decision
    values on val and test as ``[N, n_classes]`` float tensors, usable as (uncalibrated) logits;
    a two-class ridge's one decision value d becomes ``[-d/2, d/2]``.

    ``splits`` is a prepared ``Splits`` (``tunelab.data.prepare``).  Raises a UserError with the
    install hint when aeon is missing, and for seq2seq data (MiniRocket labels whole sequences).
    """
    mini_rocket = _require()
    from sklearn.linear_model import RidgeClassifierCV, RidgeCV
    from sklearn.preprocessing import StandardScaler

    from tunelab.train.metrics import classification_metrics, regression_metrics

    meta = splits.meta
    if meta.task == "seq2seq":
        raise UserError(
            f"{meta.name}: MiniRocket labels whole sequences and has no reference for seq2seq (denoising) data"
        )
    parts = {name: getattr(splits, name) for name in ("train", "val", "test")}
    length = max(MIN_LENGTH, *(int(d.lengths.max()) for d in parts.values() if len(d)))
    panels = {name: to_panel(d.x, d.lengths, length) for name, d in parts.items() if len(d)}
    classify = meta.task == "classification"
    y_train = parts["train"].y.cpu().numpy()

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba/aeon deprecation chatter
        transform = mini_rocket(n_kernels=n_kernels, random_state=seed, n_jobs=n_jobs)
        features = transform.fit_transform(panels["train"])
    scaler = StandardScaler(with_mean=False)
    features = scaler.fit_transform(features)
    ridge = RidgeClassifierCV(alphas=ALPHAS) if classify else RidgeCV(alphas=ALPHAS)
    ridge.fit(features, y_train)
    fit_seconds = time.perf_counter() - t0

    metrics: dict[str, float] = {}
    decisions: dict[str, torch.Tensor] = {}
    for name in ("val", "test"):
        if name not in panels:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f = scaler.transform(transform.transform(panels[name]))
        pred = torch.as_tensor(ridge.predict(f))
        y = parts[name].y.cpu()
        if classify and keep_decisions:
            decisions[name] = _decision_logits(ridge, f, meta.n_classes)
        if classify:
            # one-hot "logits": the metrics take the argmax, which is the ridge prediction
            onehot = torch.nn.functional.one_hot(pred.long(), meta.n_classes).float()
            found = classification_metrics(onehot, y.long(), meta.n_classes)
        else:
            found = regression_metrics(pred.float().reshape(y.shape), y.float())
        metrics |= {f"{name}_{k}": v for k, v in found.items()}
    coef = np.asarray(ridge.coef_)
    n_params = int(coef.size + np.asarray(ridge.intercept_).size)
    return ReferenceResult(
        name=NAME,
        task=meta.task,
        metrics=metrics,
        n_params=n_params,
        n_features=int(features.shape[1]),
        fit_seconds=fit_seconds,
        seconds=time.perf_counter() - t0,
        padded_length=length,
        extra={"alpha": float(ridge.alpha_), "n_kernels": n_kernels, **({"decisions": decisions} if decisions else {})},
    )


def _decision_logits(ridge: Any, features: Any, n_classes: int) -> torch.Tensor:
    """The ridge's decision values as ``[N, n_classes]`` logits, columns in class-index order."""
    d = torch.as_tensor(np.asarray(ridge.decision_function(features)), dtype=torch.float32)
    classes = [int(c) for c in ridge.classes_]
    if d.dim() == 1:  # two classes seen in training: d > 0 means classes_[1]
        d = torch.stack([-d / 2, d / 2], 1)
    out = torch.full((d.shape[0], n_classes), -1e4)  # a class never seen in training is never predicted
    out[:, classes] = d
    return out


def reference_row(cfg: Any, *, data: Any | None = None, n_kernels: int = 10_000, n_jobs: int = 1) -> dict[str, Any]:
    """The MiniRocket reference row for experiment config ``cfg``, on the same splits it trains on.

    Always returns a flat dict with ``name`` and ``status``:
    ``"ok"`` — with the metrics (``val_acc``, ``test_f1``, ... as the trainer names them),
    ``n_params``, ``fit_seconds`` and ``seconds``;
    ``"missing"`` — aeon is not installed, ``hint`` says how to get it;
    ``"not_applicable"`` — seq2seq data, ``hint`` says why.
    ``data`` is a prepared ``Splits``; by default ``tunelab.data.prepare(cfg.data, cfg.seed)``.
    """
    try:
        _require()
    except UserError as exc:
        return {"name": NAME, "status": "missing", "hint": str(exc)}
    if data is None:
        from tunelab.data import prepare

        data = prepare(cfg.data, cfg.seed)
    if data.meta.task == "seq2seq":
        return {
            "name": NAME,
            "status": "not_applicable",
            "hint": "MiniRocket labels whole sequences; no reference for seq2seq data",
        }
    return fit_minirocket(data, n_kernels=n_kernels, seed=cfg.seed, n_jobs=n_jobs).row()
