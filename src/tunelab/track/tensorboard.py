"""TensorBoard: scalars per run under ``<save_dir>/tensorboard/[<study>/]<run>``.

``tensorboard --logdir runs/tensorboard`` shows every run; a study's trials share a folder, and a
``_study`` run beside them plots each trial's value and the best so far over trial numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.track.base import FINISHED, flatten, require

if TYPE_CHECKING:
    from tunelab.config.tracking import TrackingConfig
    from tunelab.track.summary import StudySummary

__all__ = ["TensorBoardRun", "TensorBoardTracker"]


def _markdown(values: Mapping[str, Any]) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in values.items())
    return f"| key | value |\n|---|---|\n{rows}"


class TensorBoardRun:
    """One run's event file writer."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer
        self._ended = False

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        for k, v in metrics.items():
            self.writer.add_scalar(k, v, global_step=step)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.writer.add_text("tags", _markdown(tags))

    def log_artifact(self, path: Path) -> None:
        return None  # TensorBoard holds no files

    def end(self, status: str = FINISHED) -> None:
        if not self._ended:
            self._ended = True
            self.writer.add_text("status", status)
            self.writer.close()


class TensorBoardTracker:
    """Writes TensorBoard event files (``--tensorboard``)."""

    name = "tensorboard"

    def __init__(self, cfg: TrackingConfig) -> None:
        require("tensorboard", "tensorboard", "tensorboard", "TensorBoard tracking")
        self.root = cfg.save_dir / "tensorboard"
        self.study: str | None = None
        self.study_config: dict[str, Any] = {}

    def _writer(self, *parts: str) -> Any:
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(log_dir=str(self.root.joinpath(*parts)))

    def start_study(self, name: str, config: Mapping[str, Any], tags: Mapping[str, Any]) -> None:
        self.study = name
        self.study_config = flatten(config) | dict(tags)

    def start_run(
        self, name: str, params: Mapping[str, Any], tags: Mapping[str, Any], nested: bool = False
    ) -> TensorBoardRun:
        parts = (self.study, name) if nested and self.study else (name,)
        run = TensorBoardRun(self._writer(*parts))
        run.writer.add_text("params", _markdown(params))
        run.set_tags(tags)
        return run

    def end_study(self, summary: StudySummary | None, artifacts: Sequence[Path], status: str = FINISHED) -> None:
        if self.study is None:
            return
        run = TensorBoardRun(self._writer(self.study, "_study"))
        run.writer.add_text("config", _markdown(self.study_config))
        if summary is not None:
            for r in summary.trials:
                if r.value is not None:
                    run.writer.add_scalar("study/value", r.value, global_step=r.number)
                if r.best_value is not None:
                    run.writer.add_scalar("study/best_value", r.best_value, global_step=r.number)
            for k, v in summary.importances.items():
                run.writer.add_scalar(f"study/importance/{k}", v, global_step=0)
        run.end(status)
        self.study = None
