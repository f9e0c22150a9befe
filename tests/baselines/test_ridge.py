"""The torch ridge against scikit-learn's StandardScaler(with_mean=False) + RidgeClassifierCV / RidgeCV:
the same alpha, the same predictions, decision values within 1e-4 relative, in both regimes
(n <= p: Gram matrix; n > p: covariance matrix)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tunelab.baselines.ridge import ALPHAS, fit_ridge, fit_ridge_classifier

linear_model = pytest.importorskip("sklearn.linear_model")
preprocessing = pytest.importorskip("sklearn.preprocessing")

SHAPES = [(40, 120), (120, 120), (150, 30)]  # n < p, n == p (Gram), n > p (covariance)


def data(n: int, p: int, outputs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features in [0, 1] like PPVs (float32, one constant column) and linear scores of them, plus noise."""
    rng = np.random.default_rng(seed)
    x = rng.random((n + 30, p)).astype(np.float32)
    x[:, 3] = 0.25
    scores = x @ rng.standard_normal((p, outputs)) + rng.standard_normal((n + 30, outputs))
    return x, scores


def sklearn_fit(estimator: object, x: np.ndarray, y: np.ndarray, n: int) -> tuple[object, np.ndarray]:
    """``estimator`` fitted on the first ``n`` scaled rows (float64, as scikit-learn's ridge computes) and the rest scaled."""
    scaler = preprocessing.StandardScaler(with_mean=False).fit(x[:n].astype(np.float64))
    estimator.fit(scaler.transform(x[:n].astype(np.float64)), y[:n])  # type: ignore[attr-defined]
    return estimator, scaler.transform(x[n:].astype(np.float64))


def close(ours: torch.Tensor, theirs: np.ndarray) -> bool:
    theirs = theirs.reshape(ours.shape)
    return bool(np.abs(ours.numpy() - theirs).max() <= 1e-4 * np.abs(theirs).max())


@pytest.mark.parametrize("n,p", SHAPES)
@pytest.mark.parametrize("classes", [2, 4])
def test_classifier_matches_ridge_classifier_cv(n: int, p: int, classes: int) -> None:
    x, scores = data(n, p, classes, seed=n + p + classes)
    labels = scores.argmax(1) * 3 + 1  # labels need not be 0..k-1
    sk, rest = sklearn_fit(linear_model.RidgeClassifierCV(alphas=np.array(ALPHAS)), x, labels, n)
    fit = fit_ridge_classifier(torch.from_numpy(x[:n]), torch.from_numpy(labels[:n]))
    assert fit.alpha == sk.alpha_  # type: ignore[attr-defined]
    assert fit.classes.tolist() == sk.classes_.tolist()  # type: ignore[union-attr,attr-defined]
    assert close(fit.decision(torch.from_numpy(x[n:])), sk.decision_function(rest))  # type: ignore[attr-defined]
    assert fit.predict(torch.from_numpy(x[n:])).tolist() == sk.predict(rest).tolist()  # type: ignore[attr-defined]
    assert fit.n_params == sk.coef_.size + np.size(sk.intercept_)  # type: ignore[attr-defined]


@pytest.mark.parametrize("n,p", SHAPES)
@pytest.mark.parametrize("outputs", [1, 3])
def test_regressor_matches_ridge_cv(n: int, p: int, outputs: int) -> None:
    x, y = data(n, p, outputs, seed=n * p + outputs)
    y = y[:, 0] if outputs == 1 else y
    sk, rest = sklearn_fit(linear_model.RidgeCV(alphas=np.array(ALPHAS)), x, y, n)
    fit = fit_ridge(torch.from_numpy(x[:n]), torch.from_numpy(y[:n]))
    assert fit.alpha == sk.alpha_  # type: ignore[attr-defined]
    assert close(fit.predict(torch.from_numpy(x[n:])), sk.predict(rest))  # type: ignore[attr-defined]


def test_alpha_follows_the_noise() -> None:
    """Little noise: the least alpha wins; pure noise: the largest (on the same features)."""
    x, scores = data(150, 30, 1, seed=7)
    clean = x @ np.linspace(-1, 1, 30)
    assert fit_ridge(torch.from_numpy(x), torch.from_numpy(clean)).alpha == ALPHAS[0]
    noise = np.random.default_rng(8).standard_normal(len(x))
    assert fit_ridge(torch.from_numpy(x), torch.from_numpy(noise)).alpha == ALPHAS[-1]
