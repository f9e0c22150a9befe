"""The run directory: config.json, metrics.jsonl (one line per epoch), best_model.pt, summary.json."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from tunelab.results.io import _jsonable, save_checkpoint, write_json

#: a checkpoint keeps its model's final val/test outputs up to this many numbers (16 MB of float32)
MAX_KEPT_OUTPUTS = 4_000_000

__all__ = ["RunWriter"]


class RunWriter:
    """Writes one run's artifacts; every file but the append-only metrics log is atomic.

    Epoch lines are buffered and appended in one write once ``flush_seconds`` have passed since
    the last write (0: every epoch, as a solo run does), and always by :meth:`flush` and
    :meth:`finish`: a crash loses at most the last ``flush_seconds`` of a running trial's lines,
    never a finished trial's (a pack flushes each member before its trial is told)."""

    def __init__(self, run_dir: str | Path, flush_seconds: float = 0.0) -> None:
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.dir / "metrics.jsonl"
        self.flush_seconds = flush_seconds
        self._pending: list[str] = []
        self._last = time.monotonic()

    def start(self, config: dict[str, Any]) -> None:
        write_json(self.dir / "config.json", config)
        self.metrics_path.write_text("")  # a re-run starts a fresh log

    def epoch(self, record: dict[str, Any]) -> None:
        self._pending.append(json.dumps(record, default=_jsonable) + "\n")
        if time.monotonic() - self._last >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Append the buffered epoch lines in one write (readers skip a cut last line)."""
        if self._pending:
            with open(self.metrics_path, "a", encoding="utf-8") as fh:
                fh.write("".join(self._pending))
            self._pending.clear()
        self._last = time.monotonic()

    def finish(
        self,
        state_dict: dict[str, torch.Tensor],
        config: dict[str, Any],
        summary: dict[str, Any],
        outputs: dict[str, torch.Tensor] | None = None,
    ) -> None:
        """The checkpoint (with the temperature and, when small, the model's final validation and
        test outputs, which a study's ensemble then reads instead of predicting again) and summary.json."""
        self.flush()
        extra: dict[str, Any] = {"temperature": summary.get("temperature", 1.0)}
        if outputs and sum(t.numel() for t in outputs.values()) <= MAX_KEPT_OUTPUTS:
            extra["outputs"] = outputs
        save_checkpoint(self.dir / "best_model.pt", state_dict, config, extra)
        write_json(self.dir / "summary.json", summary)
