"""The public Python API: train one model, tune a study, analyse it.  The CLI calls these.

Each function takes a typed config, or a path to a file holding one, plus dotted overrides, and
returns plain result objects; errors the user can fix raise :class:`~tunelab.errors.UserError`.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.config import ExperimentConfig, StudyConfig, load_config, load_study_config, validate_config
from tunelab.config.overrides import apply_overrides
from tunelab.errors import UserError

if TYPE_CHECKING:
    from tunelab.analysis import AnalysisResult
    from tunelab.config import TrackingConfig
    from tunelab.train import RunResult
    from tunelab.train.callbacks import Callback
    from tunelab.tune import Reporter, TuneOptions, TuneResult

__all__ = ["analyze", "auto_tune_all", "train", "tune"]

log = logging.getLogger(__name__)


def _dotted(overrides: dict[str, Any]) -> dict[str, Any]:
    """Keyword overrides: ``train__lr=1e-3`` is the dotted key ``train.lr``."""
    return {k.replace("__", "."): v for k, v in overrides.items()}


def _experiment(
    cfg: ExperimentConfig | str | Path | None, overrides: list[str], kw: dict[str, Any]
) -> ExperimentConfig:
    if isinstance(cfg, ExperimentConfig):
        if not overrides and not kw:  # as given: which keys were set decides the data-aware defaults
            return cfg
        data = apply_overrides(apply_overrides(cfg.model_dump(mode="json"), overrides), _dotted(kw))
        return validate_config(data, "overrides")
    loaded = load_config(cfg, overrides or None)
    return validate_config(apply_overrides(loaded.model_dump(mode="json"), _dotted(kw))) if kw else loaded


def train(
    cfg: ExperimentConfig | str | Path | None = None,
    *,
    overrides: Sequence[str] = (),
    run_dir: str | Path | None = None,
    data: Any | None = None,
    callbacks: Sequence[Callback] = (),
    tracking: TrackingConfig | None = None,
    on_start: Callable[[ExperimentConfig, str], None] | None = None,
    **dotted: Any,
) -> RunResult:
    """Train one model and return its best weights and metrics (what ``tunelab train`` runs).

    ``cfg`` is an :class:`ExperimentConfig`, a run config file, or None for the defaults;
    ``overrides`` are dotted strings (``"train.lr=3e-4"``) and keyword overrides use ``__`` for
    the dot (``train__lr=3e-4``).  Training defaults the config leaves unset (batch size, epochs,
    patience) are fitted to the data's size; ``on_start(cfg, line)`` sees the resolved config and
    the line saying what was picked.  With ``run_dir`` the run is saved there.

    Example::

        import tunelab

        result = tunelab.train(
            data__name="synthetic_gestures", data__options={"n": 60}, model__hidden_dim=8,
            train__max_epochs=2, device="cpu",
        )
        print(result.metrics["test_acc"])
    """
    from tunelab.budget import data_size, resolve_defaults
    from tunelab.data import prepare
    from tunelab.track import TrackingConfig, run_tracking
    from tunelab.train import Diverged, fit

    config = _experiment(cfg, list(overrides), dotted)
    splits = data if data is not None else prepare(config.data, config.seed)
    config, picked = resolve_defaults(config, data_size(splits))
    if on_start is not None:
        on_start(config, picked)
    path = Path(run_dir) if run_dir is not None else None
    existed = path is not None and path.exists()
    try:
        with run_tracking(tracking or TrackingConfig(), path.name if path else None) as trackers:
            return fit(config, data=splits, callbacks=[*trackers, *callbacks], run_dir=path)
    except Diverged as exc:
        if path is not None and not existed:  # nothing half-written: the run has no model to keep
            shutil.rmtree(path, ignore_errors=True)
        clip = "lower train.clip_norm" if config.train.clip_norm else "enable clipping (train.clip_norm=1.0)"
        raise UserError(
            f"training {exc} (train.lr={config.train.lr:g}); lower train.lr or {clip}, and check the data for NaN"
        ) from None


def _study(cfg: StudyConfig | str | Path | None) -> StudyConfig:
    if isinstance(cfg, StudyConfig):
        return cfg
    if cfg is None:
        return StudyConfig()
    return load_study_config(cfg)


def tune(
    cfg: StudyConfig | str | Path | None = None,
    options: TuneOptions | None = None,
    *,
    data: Any | None = None,
    callbacks: Sequence[Callback] = (),
    reporter: Reporter | None = None,
) -> TuneResult:
    """Run (or resume) a study and return what it found (what ``tunelab tune`` runs).

    ``cfg`` is a :class:`StudyConfig`, a study file (or a run config, searched with the default
    space), or None for the default study; ``options`` say how to run it (phase, grid, resume,
    save directory, workers, pack size: :class:`tunelab.tune.TuneOptions`).

    Example::

        import tunelab
        from tunelab.config import study_from_mapping
        from tunelab.tune import TuneOptions

        study = study_from_mapping({
            "base": {"data": {"name": "synthetic_gestures", "options": {"n": 60}}, "device": "cpu",
                     "train": {"max_epochs": 2}},
            "space": {"model.hidden_dim": [8, 16]},
            "budget": {"n_trials": 2},
        })
        result = tunelab.tune(study, TuneOptions(save_dir="runs", report=False, reference=False))
        print(result.best_params)
    """
    from tunelab.tune import tune as run

    return run(_study(cfg), options, data=data, callbacks=callbacks, reporter=reporter)


def auto_tune_all(
    cfg: StudyConfig | str | Path | None = None,
    families: Sequence[str] | None = None,
    options: TuneOptions | None = None,
    **run: Any,
) -> list[TuneResult]:
    """One study per model family in turn, then a comparison (``tunelab tune --auto-tune-all``);
    ``run`` takes :func:`tune`'s keywords (``data``, ``callbacks``, ``reporter``)."""
    from tunelab.tune import auto_tune_all as run_all

    return run_all(_study(cfg), families, options, **run)


def analyze(
    study_dir: str | Path | None = None,
    *,
    storage: str | None = None,
    study_name: str | None = None,
    out_dir: str | Path | None = None,
    **options: Any,
) -> AnalysisResult:
    """What a study taught: top trials, importance, impact, overfitting, pruning (``tunelab analyze``).

    Name the study by its directory (``runs/<study>``) or by ``storage`` + ``study_name``;
    ``options`` are those of :func:`tunelab.analysis.analyze` (``top_k``, ``importance``, ``plots``...).

    Example::

        import tunelab

        report = tunelab.analyze("runs/" + result.study_name, plots=False)
        print(report.top)
    """
    from tunelab.analysis import analyze as run

    return run(storage, study_name, out_dir, study_dir=study_dir, **options)
