"""Where every benchmark's table goes: printed, and with ``--append`` added to benchmarks/RESULTS.md."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def publish(text: str, append: bool) -> None:
    """Print ``text``; with ``append``, add it to RESULTS.md after a blank line."""
    print(text)
    if append:
        with open(RESULTS, "a") as fh:
            fh.write("\n" + text.rstrip("\n") + "\n")
