"""``tunelab compare``: any runs, trials and study bests side by side, the first as the baseline,
each metric's change in % (as seed 003 reports a tuned configuration against the original), plus
an optional MiniRocket reference row fitted on the baseline's data splits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tunelab.errors import UserError
from tunelab.experiments.comparison import Comparison, Entry, Sample, compare_entries
from tunelab.experiments.sources import load_source

__all__ = ["compare_sources", "dataset_note", "reference_entry"]

REFERENCE_NAME = "MiniRocket (reference)"


def reference_entry(config: Any, data: Any | None = None) -> tuple[Entry | None, str | None]:
    """The MiniRocket row for ``config`` (an ExperimentConfig or its dict), or (None, hint)."""
    from tunelab.baselines import reference_row
    from tunelab.config import ExperimentConfig, validate_config

    cfg = config if isinstance(config, ExperimentConfig) else validate_config(config, "baseline config")
    row = reference_row(cfg, data=data)
    if row.get("status") != "ok":
        return None, str(row.get("hint"))
    metrics = {k: float(v) for k, v in row.items() if k.startswith(("val_", "test_")) and isinstance(v, int | float)}
    sample = Sample(
        label=REFERENCE_NAME,
        metrics=metrics,
        n_params=row.get("n_params"),
        seconds=row.get("fit_seconds"),
        source="minirocket",
    )
    note = f"fit {row.get('fit_seconds', 0):.2f}s on the same splits"
    return Entry(REFERENCE_NAME, [sample], reference=True, note=note), None


def compare_sources(
    specs: Sequence[str], *, reference: bool = False, metrics: Sequence[str] | None = None, data: Any | None = None
) -> tuple[Comparison, list[Entry], str | None]:
    """Compare ``specs`` (run dirs, study dirs, ``STUDY_DIR#N``); the first is the baseline.

    With ``reference``, a MiniRocket row fitted on the baseline's config (and ``data`` if given)
    is appended; when it cannot be (seq2seq data, no saved config), the third value says why.
    """
    if not specs:
        raise UserError("compare needs at least one run, study or STUDY_DIR#TRIAL")
    entries: list[Entry] = []
    for spec in specs:
        sample = load_source(spec)
        name = sample.label
        while name in [e.name for e in entries]:  # the same run twice, or two runs with one folder name
            name += "'"
        entries.append(Entry(name, [sample]))
    hint = None
    if reference:
        base_cfg = entries[0].samples[0].config
        if base_cfg is None:
            hint = f"no reference row: {specs[0]} has no saved config to rebuild its data splits from"
        else:
            ref, hint = reference_entry(base_cfg, data)
            if ref is not None:
                entries.append(ref)
    return compare_entries(entries, metrics=metrics), entries, hint


def dataset_of(config: dict[str, Any] | None) -> str | None:
    """A run's data, as a user would name it: the file (or built-in name) plus what subsets it."""
    data = (config or {}).get("data")
    if not isinstance(data, dict):
        return None
    name = str(data.get("path") or data.get("name") or "?")
    extra = [f"classes={data['classes']}"] if data.get("classes") else []
    extra += [f"{k}={v}" for k, v in sorted((data.get("options") or {}).items())]
    return f"{name} ({', '.join(extra)})" if extra else name


def dataset_note(entries: Sequence[Entry]) -> str | None:
    """One line when the compared runs used different datasets (their metrics do not compare), else None."""
    seen: dict[str, list[str]] = {}
    for e in entries:
        if e.reference:
            continue
        for sample in e.samples:
            ds = dataset_of(sample.config)
            if ds is not None:
                seen.setdefault(ds, []).append(e.name)
    if len(seen) < 2:
        return None
    used = "; ".join(f"{ds}: {', '.join(names)}" for ds, names in seen.items())
    return f"the runs used different datasets ({used}); their metrics are not comparable"
