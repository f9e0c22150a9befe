"""A live terminal view of a study: trials by state, running trials with their current epoch and
latest value, the best so far, trials per minute and an ETA.

``monitor_frame`` reads the study into plain data (tested without a terminal), ``render_frame``
draws it with rich, ``watch`` refreshes it until every planned trial has finished or Ctrl-C.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from tunelab.analysis.source import StudyInfo, study_info
from tunelab.results.attrs import TRIAL

__all__ = ["MonitorFrame", "RunningTrial", "monitor_frame", "render_frame", "watch"]

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclass
class RunningTrial:
    number: int
    model: str
    epoch: int | None  # last epoch that reported a value
    max_epochs: int | None
    value: float | None  # latest intermediate value (the objective at that epoch)
    seconds: float | None  # running for


@dataclass
class MonitorFrame:
    """One snapshot of a study, as plain data."""

    name: str
    phase: str
    objectives: list[str]
    directions: list[str]
    counts: dict[str, int]
    running: list[RunningTrial] = field(default_factory=list)
    best_number: int | None = None
    best_value: float | None = None  # first objective
    best_params: dict[str, Any] = field(default_factory=dict)
    n_pareto: int | None = None  # multi-objective studies
    planned: int | None = None
    finished: int = 0
    elapsed: float | None = None  # seconds since the first trial started
    per_minute: float | None = None  # finished trials per minute
    eta: float | None = None  # seconds until the planned trials have finished

    @property
    def done(self) -> bool:
        """Every planned trial finished and none is still running."""
        idle = self.counts.get("RUNNING", 0) == 0 and self.counts.get("WAITING", 0) == 0
        return self.planned is not None and self.finished >= self.planned and idle


def monitor_frame(study: optuna.Study, info: StudyInfo | None = None, now: datetime | None = None) -> MonitorFrame:
    """Read the current state of ``study``."""
    info = info or study_info(study)
    now = now or datetime.now()
    trials = study.get_trials(deepcopy=False)
    counts = {
        s.name: sum(t.state == s for t in trials)
        for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING)
    }
    frame = MonitorFrame(info.name, info.phase, info.objectives, info.directions, counts, planned=info.n_trials)
    frame.running = [_running(t, now) for t in trials if t.state == TrialState.RUNNING]
    frame.finished = sum(t.state in _FINISHED for t in trials)
    done = [
        t for t in trials if t.state == TrialState.COMPLETE and t.values and all(math.isfinite(v) for v in t.values)
    ]
    if done:
        sign = 1.0 if info.directions[0] == "maximize" else -1.0
        best = max(done, key=lambda t: (sign * t.values[0], -t.number))
        frame.best_number, frame.best_value, frame.best_params = best.number, best.values[0], dict(best.params)
        if info.multi_objective:
            frame.n_pareto = len(study.best_trials)
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    if starts:
        # a study with nothing running stopped at its last completion, not now
        end = now if counts["RUNNING"] or counts["WAITING"] or not ends else max(ends)
        frame.elapsed = max((end - min(starts)).total_seconds(), 0.0)
        if frame.finished and frame.elapsed > 0:
            frame.per_minute = frame.finished / (frame.elapsed / 60)
            if frame.planned is not None:
                left = max(frame.planned - frame.finished, 0)
                frame.eta = left / frame.per_minute * 60
    return frame


def _running(t: FrozenTrial, now: datetime) -> RunningTrial:
    steps = sorted(t.intermediate_values)
    epoch = steps[-1] if steps else None
    max_epochs = t.user_attrs.get(TRIAL.MAX_EPOCHS) or t.params.get("train.max_epochs")
    return RunningTrial(
        number=t.number,
        model=str(t.user_attrs.get(TRIAL.MODEL) or t.params.get("model.name") or "-"),
        epoch=epoch,
        max_epochs=int(max_epochs) if isinstance(max_epochs, (int, float)) else None,
        value=t.intermediate_values[epoch] if epoch is not None else None,
        seconds=(now - t.datetime_start).total_seconds() if t.datetime_start else None,
    )


def render_frame(frame: MonitorFrame) -> RenderableType:
    """The frame as rich renderables: header, states and progress, best so far, running trials."""
    objective = ", ".join(f"{o} ({d[:3]})" for o, d in zip(frame.objectives, frame.directions, strict=True))
    header = Text.assemble((frame.name, "bold"), f"  phase {frame.phase}  ·  {objective}")

    states = Table.grid(padding=(0, 2))
    styles = {"COMPLETE": "green", "PRUNED": "yellow", "FAIL": "red", "RUNNING": "cyan", "WAITING": "dim"}
    states.add_row(*(Text(f"{n} {s.lower()}", style=styles[s]) for s, n in frame.counts.items()))
    progress: list[RenderableType] = []
    if frame.planned:
        bar = Table.grid(padding=(0, 2))
        bar.add_row(
            ProgressBar(total=frame.planned, completed=min(frame.finished, frame.planned), width=40),
            Text(f"{frame.finished}/{frame.planned} finished"),
        )
        progress.append(bar)
    rate = "-" if frame.per_minute is None else f"{frame.per_minute:.2f}"
    eta = "done" if frame.done else _duration(frame.eta)
    states.add_row(Text(f"trials/min {rate}"), Text(f"elapsed {_duration(frame.elapsed)}"), Text(f"ETA {eta}"))

    if frame.best_number is None:
        best: RenderableType = Text("best so far: no completed trial yet", style="dim")
    else:
        params = ", ".join(f"{k}={_short(v)}" for k, v in list(frame.best_params.items())[:8])
        pareto = f"  ·  {frame.n_pareto} Pareto-optimal" if frame.n_pareto is not None else ""
        best = Text.assemble(
            "best so far: ",
            (f"{frame.objectives[0]} = {_short(frame.best_value)}", "bold green"),
            f"  (trial #{frame.best_number}){pareto}\n  {params}",
        )

    running = Table(title="running trials", title_justify="left", expand=False)
    for col in ("trial", "model", "epoch", frame.objectives[0] + " (latest)", "running for"):
        running.add_column(col, justify="right")
    for r in sorted(frame.running, key=lambda r: r.number):
        epoch = "-" if r.epoch is None else f"{r.epoch}" + (f"/{r.max_epochs}" if r.max_epochs else "")
        running.add_row(f"#{r.number}", r.model, epoch, _short(r.value), _duration(r.seconds))
    parts: list[RenderableType] = [states, *progress, best]
    parts.append(running if frame.running else Text("no trial is running", style="dim"))
    return Panel(Group(*parts), title=header, title_align="left")


def watch(study: optuna.Study, console: Console, *, interval: float = 2.0, once: bool = False) -> MonitorFrame:
    """Show the study live until every planned trial has finished, or Ctrl-C (which ends quietly)."""
    from rich.live import Live

    info = study_info(study)
    frame = monitor_frame(study, info)
    if once:
        console.print(render_frame(frame))
        return frame
    try:
        with Live(render_frame(frame), console=console, refresh_per_second=4, transient=False) as live:
            while not frame.done:
                time.sleep(interval)
                frame = monitor_frame(study, info)
                live.update(render_frame(frame))
    except KeyboardInterrupt:
        pass
    return frame


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "-" if v is None else str(v)


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{sec:02d}s"
