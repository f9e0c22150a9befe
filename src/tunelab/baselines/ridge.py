"""Ridge regression and classification with alpha chosen by leave-one-out error, in PyTorch.

What scikit-learn's ``StandardScaler(with_mean=False)`` followed by ``RidgeClassifierCV`` /
``RidgeCV`` (``alphas``, no ``cv``) compute, on CPU or CUDA:

* features are divided by their standard deviation (a feature constant up to rounding keeps
  scale 1, scikit-learn's rule), then centred for the intercept, as are the targets;
* classification targets are one-vs-all columns of +1/-1 for the classes seen in training, a
  single column (the second class's) when there are two;
* for each alpha the exact leave-one-out errors come in closed form from one eigendecomposition:
  of the Gram matrix X X' (n x n) when n <= p, of the covariance X' X (p x p) when n > p, in
  float64; alpha minimises their mean square over all samples and target columns (the first of
  equal ones);
* a class is the argmax of the decision values; two classes: the second when its value is > 0.

Features stay float32 on their device; float64 copies are made one block at a time, so memory
holds the features plus an n x n or p x p matrix and a block.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["ALPHAS", "RidgeFit", "fit_ridge", "fit_ridge_classifier"]

ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 10))  # scikit-learn's and aeon's grid for MiniRocket
BLOCK = 2048  # rows or columns of the features converted to float64 at a time
EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class RidgeFit:
    """A fitted ridge on raw (unscaled) features: ``decision(x) = x @ coef + intercept``.

    ``classes``: for classification, the class labels of the decision columns (one column for
    two classes: ``classes[1]`` when positive), None for regression.
    """

    coef: Tensor  # [p, k] float64, the feature scaling folded in
    intercept: Tensor  # [k] float64
    alpha: float
    classes: Tensor | None = None

    @property
    def n_params(self) -> int:
        return self.coef.numel() + self.intercept.numel()

    def decision(self, x: Tensor) -> Tensor:
        """Decision values ``[n, k]`` (float64) of features ``x [n, p]``."""
        coef = self.coef.to(x.device)
        return torch.cat([b.double() @ coef for b in x.split(BLOCK)]) + self.intercept.to(x.device)

    def predict(self, x: Tensor) -> Tensor:
        """Class labels (classification) or values ``[n, k]`` (regression) of features ``x``."""
        d = self.decision(x)
        if self.classes is None:
            return d
        index = (d[:, 0] > 0).long() if d.shape[1] == 1 and len(self.classes) == 2 else d.argmax(1)
        return self.classes.to(x.device)[index]


def _scale(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per feature (float64): mean and standard deviation, 1 where the variance is within
    rounding of zero (scikit-learn's ``_is_constant_feature`` bound)."""
    n = x.shape[0]
    blocks = [torch.var_mean(c.double(), 0, correction=0) for c in x.split(BLOCK, 1)]
    var, mean = torch.cat([v for v, _ in blocks]), torch.cat([m for _, m in blocks])
    constant = var <= n * EPS * var + (n * mean * EPS) ** 2
    return mean, torch.where(constant, torch.ones_like(var), var.sqrt())


def _blocks(x: Tensor, mean: Tensor, scale: Tensor, dim: int) -> Iterator[tuple[slice, Tensor]]:
    """Standardised, centred float64 blocks of ``x``: row blocks (``dim=0``) or column blocks (1)."""
    for lo in range(0, x.shape[dim], BLOCK):
        part = slice(lo, lo + BLOCK)
        if dim == 0:
            yield part, (x[part].double() - mean) / scale
        else:
            yield part, (x[:, part].double() - mean[part]) / scale[part]


def _gram(x: Tensor, mean: Tensor, scale: Tensor, y: Tensor, alphas: Tensor) -> tuple[Tensor, Tensor]:
    """n <= p: per alpha the mean squared LOO error ``[A]`` and the coefficients ``[A, p, k]`` (scaled features)."""
    n = x.shape[0]
    gram = torch.zeros(n, n, dtype=torch.float64, device=x.device)
    for _, b in _blocks(x, mean, scale, 1):
        gram += b @ b.T
    eigvals, q = torch.linalg.eigh(gram)
    ones = torch.ones(n, 1, dtype=torch.float64, device=x.device)
    qt = q.T @ torch.cat([y, ones], 1)  # [n, k + 1]
    d_inv = 1.0 / (eigvals[None, :] + alphas[:, None])  # [A, n]
    c = q @ (d_inv[:, :, None] * qt)  # [A, n, k + 1]: G^-1 y and G^-1 1
    diag = d_inv @ (q.square()).T  # [A, n]: diag(G^-1)
    diag = diag - c[:, :, -1] / n  # the intercept's correction
    looe = c[:, :, :-1] / diag[:, :, None]
    coef = torch.cat([b.T @ c[:, :, :-1] for _, b in _blocks(x, mean, scale, 1)], 1)  # X' G^-1 y
    return looe.square().mean((1, 2)), coef


def _covariance(x: Tensor, mean: Tensor, scale: Tensor, y: Tensor, alphas: Tensor) -> tuple[Tensor, Tensor]:
    """n > p: per alpha the mean squared LOO error ``[A]`` and the coefficients ``[A, p, k]`` (scaled features)."""
    n, p = x.shape
    cov = torch.zeros(p, p, dtype=torch.float64, device=x.device)
    xt_y = torch.zeros(p, y.shape[1] + 1, dtype=torch.float64, device=x.device)
    ones = torch.ones(n, 1, dtype=torch.float64, device=x.device)
    targets = torch.cat([y, ones], 1)
    for part, b in _blocks(x, mean, scale, 0):
        cov += b.T @ b
        xt_y += b.T @ targets[part]
    eigvals, v = torch.linalg.eigh(cov)
    proj = v.T @ xt_y  # [p, k + 1]
    d_inv = 1.0 / (eigvals[None, :] + alphas[:, None])  # [A, p]
    weights = (d_inv[:, :, None] * proj[None]).permute(1, 0, 2).flatten(1)  # [p, A * (k + 1)]
    sq = torch.zeros(len(alphas), dtype=torch.float64, device=x.device)
    for part, b in _blocks(x, mean, scale, 0):
        xv = b @ v  # [m, p]
        fitted = (xv @ weights).view(b.shape[0], len(alphas), -1).transpose(0, 1)  # [A, m, k + 1]: X H^-1 X' [y, 1]
        alpha_c = targets[part, :-1][None] - fitted[:, :, :-1]
        alpha_d = 1 - d_inv @ xv.square().T - (1 - fitted[:, :, -1]) / n  # [A, m]
        sq += (alpha_c / alpha_d[:, :, None]).square().sum((1, 2))
    return sq / (n * y.shape[1]), v @ (d_inv[:, :, None] * proj[None, :, :-1])  # H^-1 X' y


def fit_ridge(x: Tensor, y: Tensor, alphas: tuple[float, ...] = ALPHAS, classes: Tensor | None = None) -> RidgeFit:
    """Ridge of targets ``y [n]`` or ``[n, k]`` on features ``x [n, p]`` (any float dtype, any
    device), with the alpha of ``alphas`` whose leave-one-out mean squared error is least."""
    y2 = (y if y.dim() == 2 else y[:, None]).to(x.device, torch.float64)
    mean, scale = _scale(x)
    y_mean = y2.mean(0)
    grid = torch.tensor(alphas, dtype=torch.float64, device=x.device)
    solve = _gram if x.shape[0] <= x.shape[1] else _covariance
    errors, coefs = solve(x, mean, scale, y2 - y_mean, grid)
    best = int(errors.argmin())  # the first of equal errors, as scikit-learn keeps
    coef = coefs[best] / scale[:, None]
    return RidgeFit(coef, y_mean - mean @ coef, alphas[best], classes)


def fit_ridge_classifier(x: Tensor, labels: Tensor, alphas: tuple[float, ...] = ALPHAS) -> RidgeFit:
    """Ridge classifier of integer ``labels [n]``: one-vs-all +1/-1 targets (one column for two classes)."""
    classes, index = torch.unique(labels, return_inverse=True)
    targets = -torch.ones(len(labels), len(classes), dtype=torch.float64, device=labels.device)
    targets[torch.arange(len(labels), device=labels.device), index] = 1.0
    if len(classes) == 2:
        targets = targets[:, 1:]
    return fit_ridge(x, targets, alphas, classes)
