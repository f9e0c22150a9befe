"""The study's reference: MiniRocket fitted once on a classification study's split, kept as a study
user attribute (``STUDY.REFERENCE``) and in ``study_results.json``, and compared with the best
trial (and a saved ensemble) in the console summary and at the top of report.html.
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
    "comparison_lines",
    "fit_study_reference",
    "kept_decisions",
    "save_decisions",
]

log = logging.getLogger(__name__)

#: False turns the reference off for every study in this process (the test suite does, for the
#: study tests that do not look at it).  ``tunelab tune --no-reference`` turns it off for one study.
ENABLED = True

#: What a study keeps of the reference fit.
REFERENCE_METRICS = ("val_acc", "val_f1", "test_acc", "test_f1")

#: In the study directory: the reference's ridge decision values on val and test, with digests of
#: those rows, so that the study's ensemble reuses them instead of fitting MiniRocket again (on 2
#: CPU cores its ridge takes ~50 s for UCR's ElectricDevices).
DECISIONS_FILE = "reference.pt"


def fit_study_reference(
    splits: Any, *, seed: int = 0, n_kernels: int | None = None, device: str | None = None, keep: Path | None = None
) -> dict[str, Any] | None:
    """The reference record for a study on ``splits`` (a prepared ``Splits``) fitted on ``device``
    (the study's, e.g. ``auto``; None: the splits'), or None when the task is not classification.
    ``keep``: a file (:data:`DECISIONS_FILE`) for its decision values on val and test.

    A reference that fails to fit (e.g. out of memory) is logged and skipped: it must not cost the study.
    """
    from tunelab.baselines.minirocket import DEFAULT_KERNELS, NAME, fit_minirocket

    if splits.meta.task != "classification":
        return None
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


def _points(a: Any, b: Any) -> str | None:
    if (
        not isinstance(a, (int, float))
        or not isinstance(b, (int, float))
        or not (math.isfinite(a) and math.isfinite(b))
    ):
        return None
    return f"{100 * (a - b):+.1f} points"


def comparison_lines(
    reference: dict[str, Any] | None,
    best_metrics: dict[str, Any] | None,
    ensemble: dict[str, Any] | None = None,
    metric: str = "test_acc",
) -> list[str]:
    """Plain sentences comparing the best trial (and an ensemble) with the reference on ``metric``:

    ``best tuned model vs MiniRocket: +1.3 points test_acc (0.9730 vs 0.9600; MiniRocket fitted in 0.8 s)``
    """
    if not reference:
        return []
    name = reference.get("name", "reference")
    ref = reference.get(metric)
    lines = []
    best = (best_metrics or {}).get(metric)
    diff = _points(best, ref)
    if diff is not None:
        lines.append(
            f"best tuned model vs {name}: {diff} {metric} ({best:.4f} vs {ref:.4f};"
            f" {name} fitted in {reference.get('seconds', float('nan')):.1f} s)"
        )
    elif isinstance(ref, (int, float)):
        lines.append(f"{name} reference: {metric} {ref:.4f} (no completed trial to compare)")
    if ensemble:
        diff = _points(ensemble.get(metric), ref)
        if diff is not None:
            lines.append(f"{ensemble_label(ensemble)} vs {name}: {diff} {metric} ({ensemble[metric]:.4f} vs {ref:.4f})")
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
