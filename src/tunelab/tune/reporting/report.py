"""What the console says about a study, as plain strings (the CLI adds colour and a progress bar).

One line per finished trial, in Optuna's own words::

    Trial 5 finished with value: 0.9312 and parameters: {'train.lr': 0.0012}. Best is trial 3 with value: 0.9450.
    Trial 6 pruned at epoch 7 (median).
    Trial 7 failed: out of memory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tunelab.baselines.reference import comparison_lines, ensemble_parts
from tunelab.results.attrs import TRIAL
from tunelab.results.study import time_stopped_note

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

__all__ = ["best_summary", "comparison_rows", "fmt_value", "format_params", "trial_line"]


def fmt_value(v: Any) -> str:
    """Numbers with 4 significant digits (parameter counts in full), everything else as is."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 10000 else str(v)
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v)


def format_params(params: dict[str, Any]) -> str:
    return (
        "{"
        + ", ".join(f"'{k}': {fmt_value(v) if not isinstance(v, str) else repr(v)}" for k, v in params.items())
        + "}"
    )


def _values(trial: FrozenTrial, objectives: Sequence[str]) -> str:
    if trial.values is None:
        return "None"
    if len(trial.values) == 1:
        return fmt_value(trial.values[0])
    return "[" + ", ".join(f"{n}={fmt_value(v)}" for n, v in zip(objectives, trial.values, strict=False)) + "]"


def trial_line(trial: FrozenTrial, objectives: Sequence[str], best: FrozenTrial | None = None, pruner: str = "") -> str:
    """Optuna's log line for a finished trial, with tunelab's reason for pruning and failure."""
    state = trial.state.name
    reason = str(trial.user_attrs.get(TRIAL.REASON, "") or "")
    if state == "COMPLETE":
        line = f"Trial {trial.number} finished with value{'s' if len(objectives) > 1 else ''}: {_values(trial, objectives)} and parameters: {format_params(trial.params)}."
        if best is not None and len(objectives) == 1:
            line += f" Best is trial {best.number} with value: {fmt_value(best.value)}."
        return line
    if state == "PRUNED":
        if reason.startswith("pruned at epoch"):
            return f"Trial {trial.number} {reason}{f' ({pruner})' if pruner else ''}."
        return f"Trial {trial.number} pruned: {reason or 'stopped early'}."
    if state == "FAIL":
        return f"Trial {trial.number} failed: {reason or 'worker lost or interrupted'}."
    return f"Trial {trial.number} {state.lower()}."


def best_summary(result: Any) -> list[str]:
    """The study summary of a :class:`~tunelab.tune.runner.TuneResult`: the best value(s), its
    parameters, and the test metrics of the kept weights."""
    objectives = result.objectives
    lines = [f"Best trial: {result.best_number}"]
    if len(objectives) == 1:
        lines.append(f"  Value ({objectives[0]}): {fmt_value(result.best_values[0])}")
    else:
        lines.append(
            "  Values: "
            + ", ".join(f"{n}={fmt_value(v)}" for n, v in zip(objectives, result.best_values, strict=False))
        )
    lines.append("  Params:")
    lines += [f"    {k}: {fmt_value(v)}" for k, v in result.best_params.items()]
    test = {
        k: v
        for k, v in (result.best_metrics or {}).items()
        if k in ("test_acc", "test_f1", "test_loss", "test_mse", "test_mae", "test_snr_db")
    }
    if test:
        lines.append("  Test: " + "  ".join(f"{k}={fmt_value(v)}" for k, v in test.items()))
    if result.best_n_params is not None:
        model = (result.best_config or {}).get("model", {}).get("name", "?")
        lines.append(f"  Model: {model}, {result.best_n_params:,} parameters, {result.best_epochs} epochs")
    reference, ensemble = getattr(result, "reference", None), getattr(result, "ensemble", None)
    if ensemble and isinstance(ensemble.get("test_acc"), (int, float)):
        deep, others = ensemble_parts(ensemble)
        lines.append(
            f"  Ensemble of the {deep} best trials{''.join(f' and {m}' for m in others)}:"
            f" test_acc={fmt_value(ensemble['test_acc'])}"
            f"  test_f1={fmt_value(ensemble.get('test_f1'))}  (saved in {result.study_dir}/ensemble)"
        )
    lines += [f"  {line}" for line in comparison_lines(reference, result.best_metrics, ensemble)]
    if note := time_stopped_note(*getattr(result, "time_stopped", (0, 0))):
        lines.append(f"  {note}")
    return lines


def comparison_rows(results: Sequence[Any]) -> list[dict[str, Any]]:
    """One row per family study (seed 000's --auto-tune-all), best first."""
    rows = []
    for r in results:
        m = r.best_metrics or {}
        rows.append(
            {
                "family": r.family or r.study_name.rpartition("/")[2],
                "study": r.study_name,
                "complete": r.states.get("COMPLETE", 0),
                "pruned": r.states.get("PRUNED", 0),
                "failed": r.states.get("FAIL", 0),
                "best_trial": r.best_number,
                "value": r.best_value,
                "test_acc": m.get("test_acc"),
                "test_f1": m.get("test_f1"),
                "test_loss": m.get("test_loss"),
                "n_params": r.best_n_params,
            }
        )
    sign = -1.0 if results and results[0].directions[0] == "maximize" else 1.0
    return sorted(rows, key=lambda row: math.inf if row["value"] is None else sign * row["value"])
