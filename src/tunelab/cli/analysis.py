"""``tunelab analyze``, ``monitor`` and ``dashboard``: reading a study."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tunelab.cli import app, console

# --------------------------------------------------------------------------- analyze / monitor

StudyDirArg = Annotated[Path | None, typer.Argument(help="study directory (runs/<study>, holds study.json)")]
StorageOpt = Annotated[
    str | None, typer.Option("--storage", help="Optuna storage URL (instead of a study directory; with --study)")
]
StudyNameOpt = Annotated[str | None, typer.Option("--study", "--study-name", help="study name in --storage")]


@app.command("analyze")
def analyze_cmd(
    study_dir: StudyDirArg = None,
    storage: StorageOpt = None,
    study: StudyNameOpt = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="where analysis/, plots/ and report.html go (default: the study directory)"),
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="how many best trials to list")] = 5,
    gap_threshold: Annotated[
        float | None,
        typer.Option("--gap-threshold", help="flag trials whose train-val gap exceeds this (default 0.05)"),
    ] = None,
    importance: Annotated[str, typer.Option("--importance", help="fanova | ped_anova | mdi")] = "fanova",
    no_plots: Annotated[bool, typer.Option("--no-plots", help="tables only: no PNG/HTML plots")] = False,
) -> None:
    """What the study taught: top trials, importance, impact, overfitting, pruning; writes report.html (works while it runs)."""
    import tunelab.api
    from tunelab.analysis.console import renderables

    result = tunelab.api.analyze(
        study_dir,
        storage=storage,
        study_name=study,
        out_dir=out,
        top_k=top_k,
        gap_threshold=gap_threshold,
        importance=importance,
        plots=not no_plots,
    )
    for item in renderables(result):
        console.print(item, highlight=False)
    if result.out_dir is None:
        console.print(
            "nothing written: pass --out DIR (or a study directory) to save the tables, plots and report.html",
            highlight=False,
        )


@app.command("monitor")
def monitor_cmd(
    study_dir: StudyDirArg = None,
    storage: StorageOpt = None,
    study: StudyNameOpt = None,
    interval: Annotated[float, typer.Option("--interval", min=0.2, help="seconds between refreshes")] = 2.0,
    once: Annotated[bool, typer.Option("--once", help="print one frame and exit")] = False,
) -> None:
    """Live view of a running study: trials by state, running trials' epoch and metric, best so far, rate, ETA."""
    from tunelab.analysis.monitor import watch
    from tunelab.analysis.source import load_study, resolve_study

    ref = resolve_study(study_dir, storage=storage, study_name=study)
    watch(load_study(ref), console, interval=interval, once=once)


@app.command("dashboard")
def dashboard_cmd(
    study_dir: StudyDirArg = None,
    storage: StorageOpt = None,
    study: StudyNameOpt = None,
    host: Annotated[
        str, typer.Option("--host", help="interface to listen on (loopback by default; 0.0.0.0 exposes it)")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="port to listen on")] = 8080,
) -> None:
    """Open optuna-dashboard on a study's storage (STUDY_DIR, or --storage URL for every study in it)."""
    from tunelab.analysis.dashboard import resolve_target, serve

    target = resolve_target(study_dir, storage, study)

    def ready(url: str) -> None:
        console.print(f"optuna-dashboard: [bold]{url}[/] (Ctrl+C to stop)", highlight=False, soft_wrap=True)

    try:
        serve(target, host=host, port=port, on_ready=ready)
    except KeyboardInterrupt:
        console.print("dashboard stopped", highlight=False)
