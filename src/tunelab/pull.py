"""Build a study directory on any host from the study's storage and artifact store.

``tunelab pull --storage URL --study-name NAME`` writes ``<save-dir>/<study>/`` as the host that
ran ``tunelab tune`` would have: study.json, study.yaml, trials.csv, study_results.json, the
best_* files, best_model.pt and every trial's run files (config.json, metrics.jsonl, summary.json)
from the artifact store, then the analysis (report.html, plots/).  Trial checkpoints other than
the best one stay in the store unless asked for (they are the large files).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from tunelab.errors import UserError

__all__ = ["PullResult", "fill_best_model", "pull_study"]

log = logging.getLogger(__name__)


@dataclass
class PullResult:
    """What ``pull_study`` wrote."""

    study_dir: Path
    n_trials: int
    fetched: int  # files fetched from the artifact store
    store: str | None  # the artifact store read (None: the study has none)
    best_number: int | None
    best_model: Path | None
    report: Path | None


def pull_study(
    storage: str,
    study_name: str,
    save_dir: str | Path = "runs",
    *,
    artifacts: str | None = None,
    checkpoints: bool = False,
    report: bool = True,
) -> PullResult:
    """Write ``save_dir/study_name/`` from the study in ``storage`` and its artifact store.

    Args:
        artifacts: this host's path or URL of the store (default: the one the study recorded).
        checkpoints: also fetch every trial's checkpoint (for ``tunelab ensemble``).
        report: run the analysis (report.html, plots).
    """
    from optuna.trial import TrialState

    from tunelab.analysis.source import load_study, resolve_study, study_info
    from tunelab.results.artifacts import check_url, restore_trials, study_store
    from tunelab.results.attrs import STUDY
    from tunelab.results.study import StudyWriter
    from tunelab.storage import canonical_url, mask_url

    if artifacts is not None:
        artifacts = check_url(artifacts)
    ref = resolve_study(storage=storage, study_name=study_name)  # a missing sqlite file is refused, not created
    study = load_study(ref)
    store = study_store(study, artifacts)  # every check before the directory exists
    study_dir = Path(save_dir) / study.study_name
    writer = StudyWriter(study_dir)
    writer.artifacts = artifacts
    url = canonical_url(ref.storage)
    record = study.user_attrs.get(STUDY.STUDY_CONFIG) or {}
    writer.start(study.study_name, url, mask_url(url), {k: v for k, v in record.items() if k != "resolved_space"})
    trials = study.get_trials(deepcopy=False)
    fetched = restore_trials(store, trials, study_dir, checkpoints=checkpoints) if store is not None else 0
    running = any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials)
    best = writer.update(study, study_info(study).objectives, final=not running)
    if store is None:
        log.warning("study %s has no artifact store: only this host's trial files are here", study.study_name)
    page = None
    if report:
        from tunelab.analysis import analyze

        analyze(study=study, study_dir=study_dir)
        page = study_dir / "report.html"
    best_model = study_dir / "best_model.pt"
    return PullResult(
        study_dir=study_dir,
        n_trials=len(trials),
        fetched=fetched,
        store=store.url if store is not None else None,
        best_number=best.number if best is not None else None,
        best_model=best_model if best_model.is_file() else None,
        report=page if page is not None and page.is_file() else None,
    )


def fill_best_model(run: str | Path) -> None:
    """A study directory without best_model.pt (its best trial ran on another host): fetch the
    checkpoint from the study's artifact store.  Anything else is left as it is."""
    from tunelab.analysis.source import load_study, resolve_study
    from tunelab.results.artifacts import CHECKPOINT, fetch_file, study_store
    from tunelab.results.study import STUDY_JSON, best_trial

    path = Path(run)
    if not path.is_dir() or not (path / STUDY_JSON).is_file() or (path / CHECKPOINT).is_file():
        return
    try:
        study = load_study(resolve_study(path))
        store = study_store(study)
        best = best_trial(study)
    except UserError as exc:
        raise UserError(f"{path}: no {CHECKPOINT} here, and its study cannot give one ({exc})") from None
    if store is not None and best is not None and fetch_file(store, best, CHECKPOINT, path / CHECKPOINT):
        log.info("%s: best_model.pt of trial %d fetched from %s", path, best.number, store.url)
