"""``tunelab experiments`` and ``tunelab compare``: designed experiment sets and side-by-side runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tunelab.cli import app, console, err_console, load_plugins
from tunelab.cli.options import (
    DeviceOpt,
    EpochsOpt,
    OverridesArg,
    PluginOpt,
    SaveDirOpt,
    flag_overrides,
    fmt,
    writable,
)
from tunelab.errors import UserError

# --------------------------------------------------------------------------- experiments / compare


def _styled(comparison: object, name: str, metric: str) -> object:
    """A comparison cell as rich Text: green/red when the interval says better/worse than the baseline."""
    from rich.text import Text

    row = comparison.row(name)  # type: ignore[attr-defined]
    stat = row.stats.get(metric)
    better = stat.better if stat is not None else None
    style = "green" if better else ("red" if better is False else "")
    return Text(comparison.cell(name, metric, sep="\n"), style=style)  # type: ignore[attr-defined]


class _Progress:
    """One line per finished trial of an experiment set: its experiment, seed and lead metrics."""

    def __init__(self, lead: list[str]) -> None:
        self.lead, self.count = lead, 0

    def __call__(self, trial: Any) -> None:  # an optuna FrozenTrial
        from rich.markup import escape

        from tunelab.experiments.runner import EXPERIMENT, SEED

        self.count += 1
        attrs = trial.user_attrs
        label = f"{attrs.get(EXPERIMENT)} seed {attrs.get(SEED)}"
        state = trial.state.name
        if state == "COMPLETE":
            m = attrs.get("metrics") or {}
            shown = "  ".join(f"{k}={fmt(m[k])}" for k in self.lead if k in m)
            console.print(
                f"[green]✓[/] {self.count:>3}  {escape(label)}: {shown}  ({fmt(float(attrs.get('seconds') or 0))}s)",
                highlight=False,
            )
        else:
            console.print(
                f"[yellow]✗[/] {self.count:>3}  {escape(label)}: {state.lower()} ({escape(str(attrs.get('reason', '')))})",
                highlight=False,
            )


def _set_table(result: Any, cols: list[str]) -> Any:
    """The experiment set's comparison: mean ± std per experiment, change vs the baseline."""
    from rich.table import Table
    from rich.text import Text

    comp = result.comparison
    table = Table(
        title=f"[bold]{result.spec.name}[/]: {result.ran} trials run now, {result.skipped} finished before",
        caption=f"mean ± std over seeds (change vs {comp.baseline} in % [{comp.level:.0%} Welch t interval]); green/red: the interval excludes 0",
        title_justify="left",
        caption_justify="left",
    )
    table.add_column("experiment")
    table.add_column("n", justify="right")
    for c in cols:
        table.add_column(c, justify="right", overflow="fold")
    for r in comp.rows:
        name = Text(r.name + (" (baseline)" if r.baseline else ""), style="bold" if r.baseline else "")
        table.add_row(name, str(r.n), *(_styled(comp, r.name, c) for c in cols))  # type: ignore[arg-type]
    return table


@app.command("experiments")
def experiments_cmd(
    file: Annotated[
        Path,
        typer.Argument(
            help="experiment-set YAML: base config, named experiments (dotted overrides), repeats, baseline"
        ),
    ],
    overrides: OverridesArg = None,
    save_dir: SaveDirOpt = Path("runs"),
    storage: Annotated[
        str | None, typer.Option("--storage", help="Optuna storage URL (default sqlite:///<save-dir>/tunelab.db)")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="parallel worker processes sharing the queue")] = 1,
    epochs: EpochsOpt = None,
    device: DeviceOpt = None,
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", "-m", help="metric columns of the table (repeatable; default: the set's metrics)"),
    ] = None,
    plugin: PluginOpt = None,
) -> None:
    """Run a designed set of experiments × seeds (resumable) and compare them with the baseline: mean ± std, change % with a 95% Welch interval, plots."""
    load_plugins(plugin)
    from rich.markup import escape

    from tunelab.experiments import load_experiment_set, run_experiment_set
    from tunelab.experiments.runner import lead_metrics
    from tunelab.experiments.spec import check_metric

    flags = flag_overrides(epochs=epochs, device=device)
    spec, jobs = load_experiment_set(file, flags + list(overrides or []))  # fail fast, before any storage is touched
    for m in metric or []:
        try:
            check_metric(m)
        except ValueError as exc:
            raise UserError(f"--metric {m}: {exc}") from None
    lead = (list(metric or spec.metrics) or ["val_loss", "val_acc", "test_acc", "test_mse"])[:3]
    progress = _Progress(lead)
    console.print(
        f"experiment set [bold]{escape(spec.name)}[/]: {len(spec.experiments)} experiments, {len(jobs)} trials → {save_dir / spec.name}",
        highlight=False,
    )
    result = run_experiment_set(
        file,
        overrides=flags + list(overrides or []),
        save_dir=writable(save_dir),
        storage=storage,
        workers=workers,
        plugins=list(plugin or []),
        on_trial=progress,
    )
    comp = result.comparison
    cols = list(metric or lead_metrics(result.spec, comp)) + ["n_params", "seconds_per_epoch"]
    unknown = [m for m in cols if m not in comp.metrics]
    if unknown:
        raise UserError(f"--metric {unknown[0]}: not a metric of these runs; use one of {', '.join(comp.metrics)}")
    console.print(_set_table(result, cols))
    console.print(
        f"comparison: {result.files['md']} (all metrics: {result.files['csv'].name}, {result.files['json'].name}); plots in {result.study_dir / 'plots'}",
        highlight=False,
        soft_wrap=True,
    )


@app.command("compare")
def compare_cmd(
    sources: Annotated[
        list[str],
        typer.Argument(help="run dirs, study dirs (their best trial) or STUDY_DIR#TRIAL; the first is the baseline"),
    ],
    reference: Annotated[
        bool,
        typer.Option("--reference", help="add a MiniRocket row fitted on the baseline's data splits"),
    ] = False,
    metric: Annotated[
        list[str] | None, typer.Option("--metric", "-m", help="metrics to show (repeatable; default: all)")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="also write the table: .csv, .json or .md")] = None,
    plugin: PluginOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the comparison as JSON")] = False,
) -> None:
    """Compare runs, trials and study bests: each metric and its change in % against the first, parameters, seconds/epoch."""
    load_plugins(plugin)
    import json

    from rich.table import Table

    from tunelab.experiments import compare_sources

    comp, entries, hint = compare_sources(sources, reference=reference, metrics=metric)
    from tunelab.experiments.compare import dataset_note

    mixed = dataset_note(entries)
    if mixed:
        from rich.markup import escape

        err_console.print(f"[yellow]warning:[/] {escape(mixed)}", highlight=False)
    if out is not None:
        from tunelab.results.io import write_json, write_text

        if out.suffix == ".json":
            write_json(out, comp.to_dict())
        elif out.suffix == ".md":
            write_text(out, comp.to_markdown())
        elif out.suffix == ".csv":
            write_text(out, comp.to_frame().to_csv(index=False))
        else:
            raise UserError(f"--out {out}: use a .csv, .json or .md file name")
    if as_json:
        console.print_json(json.dumps(comp.to_dict(), default=str))
    else:
        table = Table(
            caption=f"value (change vs {comp.baseline} in %); green: better, red: worse",
            title_justify="left",
            caption_justify="left",
        )
        table.add_column("metric")
        for r in comp.rows:
            table.add_column(r.name + (" (baseline)" if r.baseline else ""), justify="right", overflow="fold")
        for m in comp.metrics:
            if all(comp.row(r.name).stats[m].summary.n == 0 for r in comp.rows):
                continue
            table.add_row(m, *(_styled(comp, r.name, m) for r in comp.rows))  # type: ignore[arg-type]
        table.add_row("epochs", *(fmt(r.epochs) if r.epochs == r.epochs else "—" for r in comp.rows))
        console.print(table)
        for e in entries:
            if e.reference and e.note:
                console.print(f"{e.name}: {e.note}", highlight=False, markup=False)
    if hint:
        from rich.markup import escape

        err_console.print(f"[yellow]note:[/] {escape(hint)}", highlight=False)
