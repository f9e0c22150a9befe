"""The study's reference: MiniRocket fitted once on a classification or regression study's split,
kept as a study user attribute (``STUDY.REFERENCE``) and in ``study_results.json``, and compared
with the best trial (and a saved ensemble) in the console summary and at the top of report.html.

Classification compares test accuracy in points; regression compares test MSE as a relative
change (lower is better), since its scale is the targets' own (MiniRocket's ridge regression: Tan
et al., "Time series extrinsic regression", DMKD 2021, found ROCKET-family features hard to beat
there too).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

__all__ = [
    "DECISIONS_FILE",
    "ENABLED",
    "REFERENCE_METRICS",
    "REFERENCE_TASKS",
    "comparison_lines",
    "fit_study_reference",
    "kept_decisions",
    "reference_metric",
    "save_decisions",
]

log = logging.getLogger(__name__)

#: False turns the reference off for every study in this process (the test suite does, for the
#: study tests that do not look at it).  ``tunelab tune --no-reference`` turns it off for one study.
ENABLED = True

#: What a study keeps of the reference fit (those its task has).
REFERENCE_METRICS = ("val_acc", "val_f1", "test_acc", "test_f1", "val_mse", "val_mae", "test_mse", "test_mae")

#: The tasks a study fits the reference for (MiniRocket labels whole sequences: no seq2seq).
REFERENCE_TASKS = ("classification", "regression")

#: In the study directory: the reference's ridge decision values on val and test, with digests of
#: those rows, so that the study's ensemble reuses them instead of fitting MiniRocket again (on 2
#: CPU cores its ridge takes ~50 s for UCR's ElectricDevices).
DECISIONS_FILE = "reference.pt"


def fit_study_reference(
    splits: Any, *, seed: int = 0, n_kernels: int | None = None, device: str | None = None, keep: Path | None = None
) -> dict[str, Any] | None:
    """The reference record for a study on ``splits`` (a prepared ``Splits``) fitted on ``device``
    (the study's, e.g. ``auto``; None: the splits'), or None when the task is not one of
    :data:`REFERENCE_TASKS`.  ``keep``: a file (:data:`DECISIONS_FILE`) for its decision values on
    val and test (classification: the study's ensemble reuses them).

    A reference that fails to fit (e.g. out of memory) is logged and skipped: it must not cost the study.
    """
    from tunelab.baselines.minirocket import DEFAULT_KERNELS, NAME, fit_minirocket

    if splits.meta.task not in REFERENCE_TASKS:
        return None
    if splits.meta.task != "classification":
        keep = None  # no ensemble to reuse them
    n_kernels = n_kernels or DEFAULT_KERNELS
    try:
        fit = fit_minirocket(splits, n_kernels=n_kernels, seed=seed, device=device, keep_decisions=keep is not None)
    except Exception as exc:
        log.warning("the MiniRocket reference could not be fitted (%s); the study goes on without it", exc)
        return None
    if keep is not None:
        save_decisions(keep, fit.extra["decisions"], splits, seed=seed, n_kernels=n_kernels)
    return {
        "name": NAME,
        **{k: fit.metrics[k] for k in REFERENCE_METRICS if k in fit.metrics},
        "seconds": round(fit.seconds, 3),
        "n_kernels": n_kernels,
        "seed": seed,
    }


def save_decisions(path: Path, decisions: dict[str, Any], splits: Any, *, seed: int, n_kernels: int) -> None:
    """Write MiniRocket's val/test decision values with digests of their rows (atomically)."""
    import torch

    from tunelab.results.io import atomic_write
    from tunelab.train.result import with_digests

    kept = with_digests(decisions, {name: getattr(splits, name) for name in decisions})
    payload: dict[str, Any] = {"seed": seed, "n_kernels": n_kernels, **kept}
    atomic_write(path, lambda fh: torch.save(payload, fh))


def kept_decisions(path: Path, splits: Any, seed: int) -> dict[str, Any] | None:
    """The decision values :func:`save_decisions` kept in ``path`` when they were computed on these
    rows of ``splits`` with ``seed`` and the default kernel count (else None: fit again)."""
    import torch

    from tunelab.baselines.minirocket import DEFAULT_KERNELS
    from tunelab.train.result import kept_outputs, split_digests

    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001  (a damaged file: fit again)
        return None
    if not isinstance(payload, dict) or payload.get("seed") != seed or payload.get("n_kernels") != DEFAULT_KERNELS:
        return None
    kept = kept_outputs(payload, split_digests(splits))
    if kept is not None:
        log.info("MiniRocket: the study reference's decision values (%s)", path)
    return kept


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _value(v: Any, metric: str) -> str:
    return f"{v:.4f}" if metric.endswith(("_acc", "_f1")) else f"{v:.4g}"


def _difference(a: Any, b: Any, metric: str) -> str | None:
    """``+1.3 points test_acc`` for a score in [0, 1]; ``38.5% lower test_mse`` or ``3.2x the
    test_mse`` for an error, whose scale is the targets' own; None when either is missing."""
    if not (_number(a) and _number(b)):
        return None
    if metric.endswith(("_acc", "_f1")):
        return f"{100 * (a - b):+.1f} points {metric}"
    if b == 0:
        return f"{metric} {'equal' if a == b else 'higher'}"
    if a >= 2 * b:
        return f"{a / b:.1f}x the {metric}"
    return f"{100 * abs(a - b) / abs(b):.1f}% {'lower' if a < b else 'higher'} {metric}"


def reference_metric(reference: dict[str, Any]) -> str:
    """The metric a reference is compared on: ``test_acc`` (classification) or ``test_mse``."""
    return "test_acc" if "test_acc" in reference else "test_mse"


def comparison_lines(
    reference: dict[str, Any] | None,
    best_metrics: dict[str, Any] | None,
    ensemble: dict[str, Any] | None = None,
    metric: str | None = None,
) -> list[str]:
    """Plain sentences comparing the best trial (and an ensemble) with the reference on ``metric``
    (default :func:`reference_metric`)::

        best tuned model vs MiniRocket: +1.3 points test_acc (0.9730 vs 0.9600; MiniRocket fitted in 0.8 s)
        best tuned model vs MiniRocket: 38.5% lower test_mse (0.0123 vs 0.02; MiniRocket fitted in 0.8 s)
    """
    if not reference:
        return []
    metric = metric or reference_metric(reference)
    name = reference.get("name", "reference")
    ref = reference.get(metric)
    lines = []
    best = (best_metrics or {}).get(metric)
    diff = _difference(best, ref, metric)
    if diff is not None:
        lines.append(
            f"best tuned model vs {name}: {diff} ({_value(best, metric)} vs {_value(ref, metric)};"
            f" {name} fitted in {reference.get('seconds', float('nan')):.1f} s)"
        )
    elif _number(ref):
        lines.append(f"{name} reference: {metric} {_value(ref, metric)} (no completed trial to compare)")
    if ensemble:
        diff = _difference(ensemble.get(metric), ref, metric)
        if diff is not None:
            lines.append(
                f"{ensemble_label(ensemble)} vs {name}: {diff}"
                f" ({_value(ensemble[metric], metric)} vs {_value(ref, metric)})"
            )
    return lines


def ensemble_parts(ensemble: dict[str, Any]) -> tuple[int, list[str]]:
    """How many trials an ensemble record averages, and its other members by name (the reference,
    when it joined: a record's ``members`` are trial numbers and names)."""
    members = ensemble.get("members", [])
    return sum(isinstance(m, int) for m in members), [str(m) for m in members if not isinstance(m, int)]


def ensemble_label(ensemble: dict[str, Any]) -> str:
    """``ensemble of 5``, or ``ensemble of 5 + MiniRocket`` when the reference is a member."""
    deep, others = ensemble_parts(ensemble)
    return f"ensemble of {deep}" + "".join(f" + {m}" for m in others)
