"""How to run a study file: the command line's choices, as one plain object."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["TuneOptions"]


@dataclass
class TuneOptions:
    """How to run a study file (the command line's choices)."""

    phase: str | None = None
    grid: str | None = None
    best_params: str | Path | dict[str, Any] | Sequence[str | Path] | None = None  # several: later phases win
    resume: bool = False
    study_name: str | None = None  # exact name; default: the study file's name + a timestamp
    save_dir: str | Path = "runs"
    workers: int = 1
    # trials trained at once as one stacked computation ("auto": by device memory); None: auto when
    # the study trains on a CUDA device in one process, else 1
    pack_size: int | str | None = None
    enqueue: str | Path | list[dict[str, Any]] | None = None
    locked: frozenset[str] = frozenset()  # config keys set on the command line: never searched
    plugins: tuple[str, ...] = ()  # re-imported by worker processes
    report: bool = True  # run the analysis (report.html, plots) at the end
    tracking: Any = None  # tunelab.track.TrackingConfig
    source: str = "study"  # the study file, for messages
    reference: bool = True  # fit MiniRocket once on a classification or regression study's split
    ensemble: int = 5  # a classification study ends with the mean of its K best trials (tunelab.ensemble); 0: none
    ensemble_reference: bool = True  # the study's MiniRocket reference joins that ensemble as its other half
    artifacts: str | None = None  # every trial's files to this artifact store (a shared path or s3://...)
    portfolio: bool = False  # no model named: search the default portfolio (tunelab.tune.space.portfolio)
