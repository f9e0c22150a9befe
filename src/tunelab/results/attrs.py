"""Names of the facts a trial records in Optuna (``trial.user_attrs``) and a study records in
``study.user_attrs``.  `tune/` writes them, `analysis/` and `track/` read them: one list, here.
"""

from __future__ import annotations

__all__ = ["STOP", "STUDY", "TRIAL"]


class TRIAL:
    """trial.user_attrs keys."""

    EPOCHS = "epochs"  # epochs trained (int)
    BEST_EPOCH = "best_epoch"  # epoch whose weights were kept (int)
    MAX_EPOCHS = "max_epochs"  # the epoch budget of the trial (int)
    TRAIN_LOSS = "train_loss"  # at the best epoch
    VAL_LOSS = "val_loss"  # at the best epoch
    GAP = "gap"  # val_loss - train_loss at the best epoch (overfitting indicator)
    N_PARAMS = "n_params"  # trainable parameters
    SECONDS = "seconds"  # wall-clock of the trial
    MODEL = "model"  # model family name
    REASON = "reason"  # why it was pruned or failed: "pruned at epoch 7", "diverged at epoch 3", "out of memory", ...
    PRUNED_EPOCH = "pruned_epoch"  # epoch at which it was pruned (int)
    TRACEBACK = "traceback"  # a failed trial's traceback (user plugin errors)
    RUN_DIR = "run_dir"  # trials/<number>-<timestamp>/ relative to the study directory
    METRICS = "metrics"  # dict of final metrics: val_* at the best epoch, test_* of the kept weights
    CONFIG = "config"  # the trial's complete ExperimentConfig as a JSON-ready dict
    PACK_SIZE = "pack_size"  # members of the pack the trial trained in (absent: trained alone)
    STOP_REASON = "stop_reason"  # why a finished run stopped: one of STOP, "max_epochs", "pruned", ...


class STOP:
    """Values of ``TRIAL.STOP_REASON`` that the analysis tells apart."""

    EARLY = "early_stopping"  # its patience ran out
    TIMEOUT = "study timeout"  # the study's deadline
    SHARE = "time share"  # its share of the time left, while other trials were queued
    TIME = (TIMEOUT, SHARE)  # stopped by the clock: more time would have trained it further


class STUDY:
    """study.user_attrs keys."""

    OBJECTIVES = "objectives"  # list of metric names, e.g. ["val_f1"] or ["val_f1", "n_params"]
    DIRECTIONS = "directions"  # list of "maximize"/"minimize"
    PHASE = "phase"  # phase name or None
    STUDY_CONFIG = "study_config"  # the resolved StudyConfig as a dict
    SAVE_DIR = "save_dir"  # the study directory
    FIXED_PARAMS = "fixed_params"  # values earlier phases fixed (dict; part of best_params.json)
    GRID = "grid"  # the named grid searched (--grid), or None
    FAMILIES = "families"  # model family labels searched (list), or None
    REFERENCE = "reference"  # MiniRocket fitted on the study's split: {name, val_/test_ acc and f1, seconds}, or absent
    ARTIFACTS = "artifacts"  # the artifact store every trial uploads its files to (a path or s3:// URL), or absent
    ENSEMBLE = "ensemble"  # the last `tunelab ensemble`: {members, test_acc, test_f1, ...}, or absent
