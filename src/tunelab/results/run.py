"""The run directory: config.json, metrics.jsonl (one line per epoch), best_model.pt, summary.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tunelab.results.io import append_jsonl, save_checkpoint, write_json

__all__ = ["RunWriter"]


class RunWriter:
    """Writes one run's artifacts; every file but the append-only metrics log is atomic."""

    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.dir / "metrics.jsonl"

    def start(self, config: dict[str, Any]) -> None:
        write_json(self.dir / "config.json", config)
        self.metrics_path.write_text("")  # a re-run starts a fresh log

    def epoch(self, record: dict[str, Any]) -> None:
        append_jsonl(self.metrics_path, record)

    def finish(self, state_dict: dict[str, torch.Tensor], config: dict[str, Any], summary: dict[str, Any]) -> None:
        save_checkpoint(
            self.dir / "best_model.pt", state_dict, config, {"temperature": summary.get("temperature", 1.0)}
        )
        write_json(self.dir / "summary.json", summary)
