"""Data: one in-memory form (``SequenceData``), built-in datasets, file loaders, splits,
normalisation, augmentation, denoising noise and device-resident batching.

Public API::

    load_dataset(cfg.data, seed=0) -> SequenceData      # the whole dataset, classes filtered, noise added
    prepare(cfg.data, seed) -> Splits                  # train/val/test, normalised with train statistics
    augment(x, lengths, cfg.data.augment, generator)   # a training batch, on its device
    load_file(path, options) -> SequenceData           # .ts / .npz / .csv / .parquet / NAME_TRAIN+TEST folder
    make_denoising(data, kind, snr_db, seed)           # any dataset -> seq2seq denoising

Importing this package registers the built-in datasets (``japanese_vowels``,
``synthetic_gestures``, ``synthetic_denoise``, ``synthetic_regression``).
"""

from __future__ import annotations

from tunelab.data import builtin as _builtin  # noqa: F401  (fills the dataset registry)
from tunelab.data.augment import augment
from tunelab.data.base import DataMeta, SequenceData, Task
from tunelab.data.formats import load_file
from tunelab.data.noise import add_noise, make_denoising, measure_snr_db
from tunelab.data.pipeline import Splits, data_key, load_dataset, prepare

__all__ = [
    "DataMeta",
    "SequenceData",
    "Splits",
    "Task",
    "add_noise",
    "augment",
    "data_key",
    "load_dataset",
    "load_file",
    "make_denoising",
    "measure_snr_db",
    "prepare",
]
