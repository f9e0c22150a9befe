"""Run a study end to end: :func:`tune` prepares it (:mod:`tunelab.tune.prepare`: checks, name,
values earlier phases fixed, the Optuna study), runs its trials (:mod:`tunelab.tune.execution.run`)
while the study directory stays up to date, and analyses the result.
:func:`auto_tune_all` runs one study per model family (seed 000's ``--auto-tune-all``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.config.families import SEED000_FAMILIES
from tunelab.config.study import StudyConfig
from tunelab.errors import UserError
from tunelab.results.io import write_text
from tunelab.train.callbacks import Callback
from tunelab.tune.execution.owners import close_session
from tunelab.tune.execution.run import FailureGuard, run_trials, trial_context
from tunelab.tune.options import TuneOptions
from tunelab.tune.prepare import prepare_study
from tunelab.tune.reporting.reporter import LogReporter, Reporter, TuneResult, TuneStart, study_result
from tunelab.tune.study import default_storage, find_latest_study, make_storage, mask_url, new_study_name, study_exists

if TYPE_CHECKING:
    import optuna

__all__ = [
    "LogReporter",
    "Reporter",
    "TuneOptions",
    "TuneResult",
    "TuneStart",
    "auto_tune_all",
    "comparison_file",
    "trial_context",
    "tune",
]

log = logging.getLogger(__name__)


def _analyze(study_dir: Path, study: optuna.Study) -> None:
    try:
        from tunelab.analysis import analyze
    except ImportError:  # the analysis package is optional at this layer
        return
    try:
        analyze(study_dir=study_dir, study=study)
    except UserError:
        raise
    except Exception:  # a plotting failure must not lose a finished study
        log.exception("the analysis of %s failed; the study itself is saved", study_dir)


def tune(
    cfg: StudyConfig,
    options: TuneOptions | None = None,
    *,
    data: Any | None = None,
    callbacks: Sequence[Callback] = (),
    reporter: Reporter | None = None,
) -> TuneResult:
    """Run (or resume) the study ``cfg`` and return what it found.

    Args:
        cfg: the validated study file.
        options: phase, grid, resume, names, workers... (:class:`TuneOptions`).
        data: prepared splits for every trial (default: prepared from each trial's config).
        callbacks: extra fit callbacks for every trial (in this process).
        reporter: receives progress; default logs through ``logging``.
    """
    opts = options or TuneOptions()
    rep = reporter or LogReporter()
    p = prepare_study(cfg, opts, data)
    cfg = p.cfg  # no model named: the default portfolio
    rep.start(p.start)
    if p.fit_reference is not None:  # after the header: on large data on a CPU it takes a minute
        p.fit_reference()
    guard = FailureGuard(cfg.budget.max_failures_in_a_row)
    study, name = p.study, p.study.study_name
    with ExitStack() as stack:
        tracking = None
        if opts.tracking is not None and getattr(opts.tracking, "enabled", False):
            from tunelab.track import study_tracking

            tracking = stack.enter_context(study_tracking(opts.tracking, name, p.resolved))
        try:
            run_trials(p, cfg, data=data, callbacks=callbacks, reporter=rep, guard=guard, tracking=tracking)
        finally:
            close_session(study, p.session)
            p.writer.update(study, p.objectives, final=True)
        ensemble = None
        if p.task == "classification" and len(p.objectives) == 1:  # study_ensemble counts the members
            from tunelab.ensemble import study_ensemble

            # None: MiniRocket joins when the study fitted it as its reference (not with --no-reference)
            with_reference = None if opts.ensemble_reference else False
            ensemble = study_ensemble(p.study_dir, opts.ensemble, data=data, with_reference=with_reference)
        if opts.report:
            _analyze(p.study_dir, study)
        result = study_result(study, p.study_dir, p.shown, p.objectives, p.family)
        result.ensemble = ensemble
        if tracking is not None:
            from tunelab.track import summarize_study

            tracking.finish(
                summarize_study(study),
                [f for f in (p.study_dir / "best_model.pt", p.study_dir / "report.html") if f.is_file()],
            )
    rep.end(result)
    if guard.message:
        raise UserError(f"study {name}: {guard.message}")
    return result


def auto_tune_all(
    cfg: StudyConfig,
    families: Sequence[str] | None = None,
    options: TuneOptions | None = None,
    *,
    data: Any | None = None,
    callbacks: Sequence[Callback] = (),
    reporter: Reporter | None = None,
) -> list[TuneResult]:
    """One study per model family, in turn (seed 000's ``--auto-tune-all``), named
    ``<study>-<timestamp>/<family>``; compare them with :func:`tunelab.tune.reporting.report.comparison_rows`."""
    opts = options or TuneOptions()
    if opts.phase is not None or opts.grid is not None:
        raise UserError("--auto-tune-all runs whole studies per family; drop --phase/--grid")
    labels = list(families or cfg.families or SEED000_FAMILIES)
    url = cfg.storage or default_storage(opts.save_dir)
    storage = make_storage(
        url, heartbeat_interval=cfg.heartbeat_interval, grace_period=cfg.grace_period, max_retry=cfg.max_retry
    )
    base = opts.study_name or cfg.name or "tune"
    head = None
    if not opts.resume:
        head, i = new_study_name(base), 1
        while any(study_exists(storage, f"{head}/{lab}") for lab in labels):
            head, i = f"{new_study_name(base)}-{i}", i + 1
    results = []
    for label in labels:
        if head is not None:
            name = f"{head}/{label}"
        else:
            found = find_latest_study(storage, base, label)
            if found is None:
                raise UserError(f"--resume: no study '{base}-<timestamp>/{label}' in {mask_url(url)}")
            name = found
        fam_cfg = cfg.model_copy(update={"families": [label]})
        results.append(tune(fam_cfg, replace(opts, study_name=name), data=data, callbacks=callbacks, reporter=reporter))
    write_comparison(results)
    return results


def comparison_file(results: Sequence[TuneResult]) -> Path:
    """Where :func:`auto_tune_all` writes its family comparison: the study group's folder."""
    return results[0].study_dir.parent / "comparison.csv"


def write_comparison(results: Sequence[TuneResult]) -> Path | None:
    """The family comparison (one row per family, best first) as ``<group>/comparison.csv``."""
    if not results:
        return None
    from tunelab.results.study import _csv
    from tunelab.tune.reporting.report import comparison_rows

    return write_text(comparison_file(results), _csv(comparison_rows(results)))
