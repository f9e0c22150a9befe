"""Which trials should join a study's ensemble?  Member rules, measured on saved studies (no training).

For each study folder under ``STUDIES`` (``benchmarks/tsc.py --out DIR`` leaves them in
``DIR/studies``), the ensemble of the study's trials with MiniRocket as its other half
(:data:`tunelab.ensemble.REFERENCE_WEIGHT`), its members chosen by each rule:

* ``top-k``: the K best trials by the study's objective (validation), as ``tunelab tune`` does;
* ``above chance``: of those, the ones whose objective beats a constant prediction of the
  training split's majority class on validation (the best trial always stays);
* ``half-way``: of those, the ones at least half-way from that constant prediction to the best trial;
* ``best``: the best trial alone.

Prints test accuracy per study and rule, and the means; ``--append`` adds it to benchmarks/RESULTS.md.

    python benchmarks/ensemble_members.py /tmp/tscF/studies --top-k 5
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from results_md import publish

from tunelab.baselines.reference import DECISIONS_FILE
from tunelab.ensemble import REFERENCE_WEIGHT, _member_logits, _members_from_study, _reference_logits, member_weights
from tunelab.ensemble import mean_probabilities as mix
from tunelab.train.metrics import classification_metrics


def constant_score(splits: Any, metric: str) -> float:
    """The validation ``metric`` (acc or f1) of always predicting the training majority class."""
    n = splits.meta.n_classes
    majority = int(torch.bincount(splits.train.y.cpu(), minlength=n).argmax())
    y = splits.val.y.cpu()
    logits = torch.nn.functional.one_hot(torch.full_like(y, majority), n).float()
    return classification_metrics(logits, y, n)[metric]


Rule = Callable[[list[float], float], list[int]]  # (members' objective values, constant score) -> kept indices
RULES: dict[str, Rule] = {
    "top-k": lambda v, c: list(range(len(v))),
    "above chance": lambda v, c: [0] + [i for i in range(1, len(v)) if v[i] > c],
    "half-way": lambda v, c: [0] + [i for i in range(1, len(v)) if v[i] - c >= 0.5 * (v[0] - c)],
    "best": lambda v, c: [0],
}


def score(study: Path, top_k: int) -> dict[str, Any] | None:
    """Test accuracy of the study's ensemble (with MiniRocket) under each rule, and its members."""
    try:
        members, results = _members_from_study(study, top_k)
    except Exception as exc:  # no checkpoint: nothing to mix
        print(f"{study.name}: skipped ({exc})")
        return None
    objective = (results.get("objectives") or ["val_f1"])[0]
    if not objective.startswith("val_") or (results.get("directions") or ["maximize"])[0] != "maximize":
        print(f"{study.name}: skipped (objective {objective})")
        return None
    splits, outputs, temps, cfgs = _member_logits([Path(m["checkpoint"]) for m in members], "cpu")
    ref, ref_t = _reference_logits(splits, cfgs[0].seed, "cpu", study / DECISIONS_FILE)
    values = [float(m["value"]) for m in members]
    const = constant_score(splits, objective.removeprefix("val_"))
    y = splits.test.y.cpu()
    row: dict[str, Any] = {"study": study.name, "values": [round(v, 3) for v in values], "constant": round(const, 3)}
    for name, rule in RULES.items():
        kept = rule(values, const)
        logits = [outputs[i]["test"] for i in kept] + [ref["test"]]
        p = mix(logits, [temps[i] for i in kept] + [ref_t], member_weights(len(kept), REFERENCE_WEIGHT))
        row[name] = float((p.argmax(-1) == y).float().mean())
        row[f"{name} k"] = len(kept)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("studies", type=Path, help="a folder holding study folders (each with study_results.json)")
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--append", action="store_true")
    a = ap.parse_args()
    rows = [r for s in sorted(p.parent for p in a.studies.rglob("study_results.json")) if (r := score(s, a.top_k))]
    cols = list(RULES)
    lines = [
        f"`python benchmarks/ensemble_members.py {a.studies} --top-k {a.top_k}`: test accuracy of the study's"
        f" ensemble with MiniRocket weighing {REFERENCE_WEIGHT}, members chosen by each rule (members in brackets);"
        " values = the top-k trials' validation objective, best first; constant = that of always predicting the"
        " training majority class.",
        "",
        "| study | values | constant | " + " | ".join(cols) + " |",
        "|---|---|---:|" + "---:|" * len(cols),
    ]
    for r in rows:
        cells = " | ".join(f"{r[c]:.3f} ({r[c + ' k']})" for c in cols)
        lines.append(f"| {r['study']} | {' '.join(map(str, r['values']))} | {r['constant']:.3f} | {cells} |")
    if rows:
        means = " | ".join(f"{sum(r[c] for r in rows) / len(rows):.3f}" for c in cols)
        lines.append(f"| mean | | | {means} |")
    text = "\n".join(lines) + "\n"
    publish(text, a.append)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
