"""MiniRocket's share in a study's ensemble, measured on saved studies (no training).

For each study folder under ``STUDIES`` (e.g. ``benchmarks/tsc.py --out DIR`` leaves them in
``DIR/studies``): the top-K trials' calibrated test probabilities and MiniRocket's (refitted on the
same split, as ``tunelab ensemble --with-reference`` does), mixed at each weight of ``--weights``
(MiniRocket's share; the trials share the rest equally), plus MiniRocket as one more equal member
(``1/(K+1)``, the rule before 2026-12-07).  The members are the same in every column, so the
columns differ only by the weights.  Prints a table of test accuracy per study and the means;
``--append`` adds it to benchmarks/RESULTS.md.

    python benchmarks/ensemble_weights.py /tmp/tscA/studies --top-k 5 --append
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from results_md import publish

from tunelab.ensemble import _member_logits, _members_from_study, _reference_logits, mean_probabilities


def score(study: Path, top_k: int, weights: list[float]) -> dict[str, float] | None:
    """Test accuracy of the study's top-k ensemble at each MiniRocket weight (None: 1/(k+1))."""
    try:
        members, _ = _members_from_study(study, top_k)
    except Exception as exc:  # no checkpoint: nothing to mix
        print(f"{study.name}: skipped ({exc})")
        return None
    splits, outputs, temps, cfgs = _member_logits([Path(m["checkpoint"]) for m in members], "cpu")
    ref, ref_t = _reference_logits(splits, cfgs[0].seed, "cpu")
    logits, y, k = [o["test"] for o in outputs] + [ref["test"]], splits.test.y.cpu(), len(members)
    row = {}
    for w in [1 / (k + 1), *weights]:
        p = mean_probabilities(logits, [*temps, ref_t], [(1 - w) / k] * k + [w])
        row[f"{w:.2f}" if w in weights else "1/(k+1)"] = float((p.argmax(-1) == y).float().mean())
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "studies", type=Path, help="a folder holding study folders (each with study_results.json), at any depth"
    )
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--weights", default="0,0.33,0.5,0.67,1", help="MiniRocket's shares to try")
    ap.add_argument("--append", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = ap.parse_args()
    weights = [float(w) for w in args.weights.split(",")]
    rows = {}
    for study in sorted(p.parent for p in args.studies.rglob("study_results.json")):
        row = score(study, args.top_k, weights)
        if row is not None:
            name = json.loads((study / "study_results.json").read_text()).get("study_name", study.name)
            rows[name.rsplit("-", 2)[0]] = row  # tsc.py's names: DATASET-YYYYmmdd-HHMMSS
    if not rows:
        raise SystemExit(f"{args.studies}: no study with a checkpoint")
    cols = list(next(iter(rows.values())))
    lines = [
        f"## MiniRocket's share in the ensemble, {time.strftime('%Y-%m-%d')} (torch {torch.__version__})",
        "",
        f"Command: `python benchmarks/ensemble_weights.py {args.studies} --top-k {args.top_k} --weights {args.weights}`  ",
        f"Test accuracy of the same top-{args.top_k} members and MiniRocket mixed at MiniRocket's share"
        " (column; 1/(k+1): one more equal member; 0: the trials alone; 1: MiniRocket alone).",
        "",
        "| study | " + " | ".join(cols) + " |",
        "|---|" + "---:|" * len(cols),
        *(f"| {n} | " + " | ".join(f"{r[c]:.3f}" for c in cols) + " |" for n, r in rows.items()),
        "| mean | " + " | ".join(f"{sum(r[c] for r in rows.values()) / len(rows):.3f}" for c in cols) + " |",
        "",
    ]
    text = "\n".join(lines)
    publish(text, args.append)


if __name__ == "__main__":
    main()
