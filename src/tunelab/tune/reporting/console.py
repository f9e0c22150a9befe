"""The console view of a running study (used by ``tunelab tune``): one Optuna-style line per
finished trial, a progress bar over trials with the best value so far and an ETA, and the best
trial's summary at the end."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from tunelab.results.study import best_trial
from tunelab.tune.reporting.report import best_summary, fmt_value, trial_line
from tunelab.tune.reporting.reporter import TuneResult, TuneStart

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

__all__ = ["ConsoleReporter"]


class ConsoleReporter:
    """A :class:`~tunelab.tune.runner.Reporter` drawing with rich."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.progress: Progress | None = None
        self.task: Any = None
        self.info: TuneStart | None = None

    def start(self, info: TuneStart) -> None:
        self.info = info
        c = self.console
        what = f"{info.n_trials} trials" if info.n_trials is not None else "trials"
        if info.timeout:
            what += f" (at most {info.timeout:g}s)"
        head = "resuming" if info.resumed else "study"
        c.print(
            f"[bold]{head} {info.study_name}[/] · {what} · sampler {info.sampler} · pruner {info.pruner} · {info.storage}",
            highlight=False,
            soft_wrap=True,
        )
        c.print(
            f"  objective: {', '.join(f'{d} {m}' for m, d in zip(info.objectives, info.directions, strict=False))} · {info.n_params} parameters searched · study dir {info.study_dir}",
            highlight=False,
            soft_wrap=True,
        )
        if info.defaults:
            c.print(f"  {info.defaults}", highlight=False, soft_wrap=True)
        if info.budget:
            c.print(f"  {info.budget}", highlight=False, soft_wrap=True)
        if info.grid is not None:
            c.print(f"  grid '{info.grid}': {info.grid_size} combinations", highlight=False, soft_wrap=True)
        if info.phase is not None:
            fixed = ", ".join(f"{k}={fmt_value(v)}" for k, v in info.fixed.items()) or "none"
            c.print(f"  phase {info.phase}: fixed from earlier phases: {fixed}", highlight=False, soft_wrap=True)
        if info.resumed:
            c.print(
                f"  {info.n_existing} trials already in the study; adding {info.n_trials if info.n_trials is not None else 'more'}",
                highlight=False,
                soft_wrap=True,
            )
        if info.n_enqueued:
            c.print(f"  {info.n_enqueued} known configurations queued first", highlight=False, soft_wrap=True)
        if info.workers > 1:
            c.print(f"  {info.workers} worker processes", highlight=False, soft_wrap=True)
        if info.pack_size != 1:
            size = "as many as GPU memory holds" if info.pack_size == "auto" else f"up to {info.pack_size}"
            c.print(
                f"  packs: trials of one family and shapes train together, {size} (--pack-size 1: one at a time)",
                highlight=False,
                soft_wrap=True,
            )
        if info.reference:
            c.print(
                "  fitting the MiniRocket reference on the study's split first (its time counts in the budget)",
                highlight=False,
                soft_wrap=True,
            )
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=c,
            transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task("best: -", total=info.n_trials)

    def trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        info = self.info
        assert info is not None and self.progress is not None
        best = best_trial(study)
        line = trial_line(trial, info.objectives, best if len(info.objectives) == 1 else None, info.pruner)
        style = {"COMPLETE": "", "PRUNED": "yellow", "FAIL": "red"}.get(trial.state.name, "")
        # plain text, not markup: "[val_f1=0.9, n_params=1234]" would be read as a style tag and vanish
        self.progress.console.print(Text(line, style=style), highlight=False, soft_wrap=True)
        desc = f"best: {fmt_value(best.values[0])} (#{best.number})" if best is not None else "best: -"
        self.progress.update(self.task, advance=1, description=desc)

    def end(self, result: TuneResult) -> None:
        if self.progress is not None:
            self.progress.stop()
        c = self.console
        states = ", ".join(f"{n} {s.lower()}" for s, n in result.states.items())
        c.print(f"[bold]study {result.study_name}[/]: {states}", highlight=False, soft_wrap=True)
        if result.best_number is None:
            c.print("no trial completed; see trials.csv for the reasons", style="yellow", soft_wrap=True)
            return
        for line in best_summary(result):
            c.print(line, highlight=False, soft_wrap=True, markup=False)
        if result.pareto:
            c.print(f"  Pareto front: {len(result.pareto)} trials (pareto_front.json)", highlight=False, soft_wrap=True)
        c.print(f"  best config: {result.study_dir / 'best_config.json'}", highlight=False, soft_wrap=True)
        if result.best_model:
            c.print(
                f"  best model:  {result.best_model}  (re-evaluate: tunelab evaluate {result.study_dir})",
                highlight=False,
                soft_wrap=True,
            )
