"""The maths and markdown of benchmarks/tsc.py's table: wins/ties/losses, mean ranks, means.

Plain functions of the result rows (dicts with a ``dataset`` key and one float per method), so the
counting is tested without running a study (tests/benchmarks/test_tsc_table.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["DIGITS", "deficits", "mean_ranks", "means", "ranks", "render", "wins_ties_losses"]

#: accuracies are compared rounded to this many decimals: equal there is a tie (rank and W/T/L)
DIGITS = 4


def _acc(row: dict[str, Any], col: str) -> float | None:
    v = row.get(col)
    return round(float(v), DIGITS) if isinstance(v, int | float) and v == v else None


def ranks(values: Sequence[float]) -> list[float]:
    """Rank 1 = the highest; tied values share the mean of the ranks they span (1, 2.5, 2.5, 4)."""
    return [1 + sum(o > v for o in values) + 0.5 * (sum(o == v for o in values) - 1) for v in values]


def complete(rows: Sequence[dict[str, Any]], cols: Sequence[str]) -> list[dict[str, Any]]:
    """The rows that have an accuracy in every one of ``cols``."""
    return [r for r in rows if all(_acc(r, c) is not None for c in cols)]


def mean_ranks(rows: Sequence[dict[str, Any]], cols: Sequence[str]) -> tuple[dict[str, float], int]:
    """Each column's mean rank over the rows complete in ``cols``, and how many rows that is."""
    full = complete(rows, cols)
    totals = dict.fromkeys(cols, 0.0)
    for r in full:
        for c, rk in zip(cols, ranks([_acc(r, c) for c in cols]), strict=True):  # type: ignore[misc]
            totals[c] += rk
    return ({c: t / len(full) for c, t in totals.items()} if full else {}), len(full)


def means(rows: Sequence[dict[str, Any]], cols: Sequence[str]) -> dict[str, float]:
    """Each column's mean accuracy over the rows complete in ``cols`` (the same datasets for all)."""
    full = complete(rows, cols)
    return {c: sum(_acc(r, c) for r in full) / len(full) for c in cols} if full else {}  # type: ignore[misc]


def wins_ties_losses(rows: Sequence[dict[str, Any]], ours: str, ref: str) -> tuple[int, int, int]:
    """(wins, ties, losses) of ``ours`` against ``ref`` over the rows that have both."""
    w = t = lo = 0
    for r in complete(rows, (ours, ref)):
        a, b = _acc(r, ours), _acc(r, ref)
        w, t, lo = (w + 1, t, lo) if a > b else (w, t + 1, lo) if a == b else (w, t, lo + 1)  # type: ignore[operator]
    return w, t, lo


def deficits(rows: Sequence[dict[str, Any]], ours: str, ref: str, points: float) -> list[tuple[str, float]]:
    """(dataset, points below) where ``ours`` is more than ``points`` accuracy points below ``ref``."""
    out = []
    for r in complete(rows, (ours, ref)):
        gap = 100 * (_acc(r, ref) - _acc(r, ours))  # type: ignore[operator]
        if gap > points:
            out.append((str(r["dataset"]), round(gap, 1)))
    return out


def _cell(v: Any, acc: bool) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if acc else f"{v:g}"
    return "-" if v is None else str(v)


def render(rows: Sequence[dict[str, Any]], ours: Sequence[str], refs: Sequence[str], extra: Sequence[str]) -> str:
    """The markdown table (one row per dataset), then W/T/L of each of ``ours`` vs each of ``refs``,
    the mean accuracy and mean rank of every method on the datasets where all have one, and the
    datasets where ``ours[0]`` is more than 3 points below ``refs[0]`` or at chance."""
    cols = [c for c in (*ours, *refs) if any(_acc(r, c) is not None for r in rows)]  # e.g. no aeon: no MiniRocket
    ours, refs = [c for c in ours if c in cols] or list(ours[:1]), [c for c in refs if c in cols]
    lines = ["| dataset | " + " | ".join([*cols, *extra]) + " |", "|---" + "|---:" * (len(cols) + len(extra)) + "|"]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | "
            + " | ".join(_cell(r.get(c), c in cols or c == "chance") for c in [*cols, *extra])
            + " |"
        )
    lines.append("")
    if ours[0] not in cols:
        lines.append(f"- {ours[0]}: no result on any dataset (no trial finished)")
    for o in (c for c in ours if c in cols):
        for ref in refs:
            w, t, lo = wins_ties_losses(rows, o, ref)
            lines.append(f"- {o} vs {ref}: {w} wins / {t} ties / {lo} losses")
    mr, n = mean_ranks(rows, cols)
    if n:
        mean = means(rows, cols)
        lines.append(f"- on the {n} datasets where every column has a value (ties: equal to {DIGITS} decimals):")
        lines.append("  mean accuracy " + ", ".join(f"{c} {mean[c]:.4f}" for c in cols))
        lines.append("  mean rank " + ", ".join(f"{c} {mr[c]:.2f}" for c in cols))
    return "\n".join(lines + (_verdicts(rows, ours[0], refs[:1]) if ours[0] in cols else []))


def _verdicts(rows: Sequence[dict[str, Any]], ours: str, refs: Sequence[str]) -> list[str]:
    """The issue's bars: no dataset more than 3 points below the first reference, none at chance."""
    lines = []
    for ref in refs:
        far = deficits(rows, ours, ref, 3.0)
        lines.append(
            f"- {ours} more than 3 points below {ref}: " + (", ".join(f"{d} ({g:+.1f})" for d, g in far) or "none")
        )
    low = [str(r["dataset"]) for r in rows if _at_chance(r, ours)]
    lines.append(f"- {ours} at chance (<= the majority-class rate + 2 points): " + (", ".join(low) or "none"))
    missing = [str(r["dataset"]) for r in rows if _acc(r, ours) is None]
    return lines + ([f"- {ours} without a result (no trial finished): " + ", ".join(missing)] if missing else [])


def _at_chance(row: dict[str, Any], col: str) -> bool:
    a, c = _acc(row, col), _acc(row, "chance")
    return a is not None and c is not None and a <= c + 0.02
