"""Experiment sets and comparisons: designed experiments against a baseline, and ``compare``.

* :func:`run_experiment_set` — run (or resume) a YAML set of named experiments × seeds as one
  Optuna study and write the comparison (mean ± std, change vs the baseline with a Welch
  interval, plots).
* :func:`compare_sources` — the same table for any runs, study bests and trials.
"""

from __future__ import annotations

from tunelab.experiments.compare import compare_sources, reference_entry
from tunelab.experiments.comparison import Comparison, Entry, Sample, compare_entries, higher_is_better
from tunelab.experiments.runner import SetResult, run_experiment_set
from tunelab.experiments.sources import load_source
from tunelab.experiments.spec import ExperimentSet, Job, load_experiment_set
from tunelab.experiments.stats import Interval, Summary, summarize, welch_interval

__all__ = [
    "Comparison",
    "Entry",
    "ExperimentSet",
    "Interval",
    "Job",
    "Sample",
    "SetResult",
    "Summary",
    "compare_entries",
    "compare_sources",
    "higher_is_better",
    "load_experiment_set",
    "load_source",
    "reference_entry",
    "run_experiment_set",
    "summarize",
    "welch_interval",
]
