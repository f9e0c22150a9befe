"""``tunelab tune`` and ``tunelab space``: hyperparameter search."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from tunelab.cli import app, console, load_plugins
from tunelab.cli import options as opt
from tunelab.registry import PRUNERS, SAMPLERS

# --------------------------------------------------------------------------- tune / space

StudyConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="study YAML/JSON (or an experiment file: searched with the default space)"),
]
ModelsOpt = Annotated[
    str | None,
    typer.Option(
        "--model", "--model-type", help="model family, or several: gru,lstm,transformer (searched as model.name)"
    ),
]
EnhancedOpt = Annotated[
    bool | None,
    typer.Option("--enhanced/--standard", help="bilstm: enhanced (attention, conv, gated residuals) or standard"),
]
PhaseOpt = Annotated[
    str | None, typer.Option("--phase", help="tune only this phase's parameters (earlier phases' best fixed)")
]
GridOpt = Annotated[
    str | None, typer.Option("--grid", help="exhaustive search over a named grid of the study file (e.g. quick, full)")
]


AutoTuneAllOpt = Annotated[
    bool,
    typer.Option(
        "--auto-tune-all",
        help="one study per family in turn (--model list, else BiLSTM standard/enhanced, transformer, TCN), then a comparison",
    ),
]
TrialsOpt = Annotated[
    int | None,
    typer.Option("--trials", "--n-trials", min=1, help="trials to run now (default 20; a whole grid with --grid)"),
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        min=1,
        help="seconds for the whole study: running trials stop at their next epoch end (default 600 with no --model)",
    ),
]
ResumeOpt = Annotated[
    bool, typer.Option("--resume", help="continue the study (--study-name, else the newest of this name)")
]
StudyNameOpt = Annotated[
    str | None, typer.Option("--study-name", help="exact study name (default: the study file's name + a timestamp)")
]
StorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="Optuna storage URL (default sqlite:///<save-dir>/tunelab.db; journal:///file.log; postgresql://...)",
    ),
]
ArtifactsOpt = Annotated[
    str | None,
    typer.Option(
        "--artifacts",
        help="every trial's checkpoint and run files also go here: a directory all hosts mount, or s3://BUCKET",
    ),
]
BestParamsOpt = Annotated[
    Path | None,
    typer.Option(
        "--best-params",
        help="best_params.json of an earlier phase, or several (a glob: later phases override earlier ones; default: found in the storage)",
    ),
]
SamplerOpt = Annotated[str | None, typer.Option("--sampler", help=" | ".join(SAMPLERS.names()))]
PrunerOpt = Annotated[str | None, typer.Option("--pruner", help=" | ".join(PRUNERS.names()))]
WorkersOpt = Annotated[int, typer.Option("--workers", min=1, help="worker processes sharing the study")]
PackSizeOpt = Annotated[
    str | None,
    typer.Option(
        "--pack-size",
        help="trials trained at once as one stacked model (same family and shapes): N, or auto (by GPU memory); "
        "default auto on a GPU with one worker process, else 1",
    ),
]
EnqueueOpt = Annotated[
    Path | None,
    typer.Option("--enqueue", help="JSON/YAML of known configurations (parameter → value) to evaluate first"),
]
ObjectivesOpt = Annotated[
    str | None,
    typer.Option("--objectives", "--objective", help="metric(s), e.g. val_f1 or val_f1,n_params (Pareto front)"),
]
NoReportOpt = Annotated[bool, typer.Option("--no-report", help="skip the analysis (plots, report.html) at the end")]
NoReferenceOpt = Annotated[
    bool,
    typer.Option(
        "--no-reference", help="skip the MiniRocket reference fitted on a classification or regression study's split"
    ),
]
EnsembleOpt = Annotated[
    int,
    typer.Option(
        "--ensemble",
        min=0,
        help="a classification study ends with the mean of its K best trials' calibrated probabilities"
        " (half) and MiniRocket's (half), scored on test and saved as STUDY/ensemble (0: none)",
    ),
]

EnsembleReferenceOpt = Annotated[
    bool,
    typer.Option(
        "--ensemble-reference/--no-ensemble-reference",
        help="the study's MiniRocket reference is that ensemble's other half (evaluate accepts it; export leaves"
        " MiniRocket out)",
    ),
]


#: flags passed to TuneOptions as they are
_OPTION_FLAGS = (
    "phase",
    "grid",
    "resume",
    "study_name",
    "workers",
    "pack_size",
    "enqueue",
    "artifacts",
    "ensemble",
    "ensemble_reference",
)


def _no_model_named(config: Path | None, model: str | None, enhanced: bool | None, locked: frozenset[str]) -> bool:
    """No study file, --model or model.* override: tune searches the default portfolio
    (tunelab.tune.space.portfolio)."""
    from tunelab.config.flags import family_labels

    return config is None and family_labels(model, enhanced) is None and not any(k.startswith("model.") for k in locked)


def _quiet_optuna() -> None:
    """The console reporter prints Optuna-style lines itself."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)


@app.command("tune")
def tune_cmd(
    overrides: opt.OverridesArg = None,
    config: StudyConfigOpt = None,
    model: ModelsOpt = None,
    enhanced: EnhancedOpt = None,
    auto_tune_all: AutoTuneAllOpt = False,
    trials: TrialsOpt = None,
    timeout: TimeoutOpt = None,
    resume: ResumeOpt = False,
    save_dir: opt.SaveDirOpt = Path("runs"),
    study_name: StudyNameOpt = None,
    storage: StorageOpt = None,
    artifacts: ArtifactsOpt = None,
    best_params: BestParamsOpt = None,
    phase: PhaseOpt = None,
    grid: GridOpt = None,
    sampler: SamplerOpt = None,
    pruner: PrunerOpt = None,
    workers: WorkersOpt = 1,
    pack_size: PackSizeOpt = None,
    enqueue: EnqueueOpt = None,
    objectives: ObjectivesOpt = None,
    epochs: opt.EpochsOpt = None,
    patience: opt.PatienceOpt = None,
    batch_size: opt.BatchOpt = None,
    device: opt.DeviceOpt = None,
    data_path: opt.DataPathOpt = None,
    dataset: opt.DatasetOpt = None,
    classes: opt.ClassesOpt = None,
    seed: opt.SeedOpt = None,
    plugin: opt.PluginOpt = None,
    no_report: NoReportOpt = False,
    no_reference: NoReferenceOpt = False,
    ensemble: EnsembleOpt = 5,
    ensemble_reference: EnsembleReferenceOpt = True,
    wandb: opt.WandbOpt = False,
    wandb_project: opt.WandbProjectOpt = None,
    wandb_entity: opt.WandbEntityOpt = None,
    wandb_group: opt.WandbGroupOpt = None,
    mlflow: opt.MlflowOpt = False,
    mlflow_uri: opt.MlflowUriOpt = None,
    tensorboard: opt.TensorboardOpt = False,
) -> None:
    """Search hyperparameters (and model families) with Optuna; writes runs/<study>/ with the best model."""
    flags = dict(locals())  # every flag by name: the config is built from them below
    load_plugins(plugin)
    import tunelab.api
    from tunelab.config.flags import family_labels, study_from_flags
    from tunelab.tune import TuneOptions
    from tunelab.tune.reporting.console import ConsoleReporter

    _quiet_optuna()
    best_files, rest = _best_params_files(best_params, overrides)
    cfg, locked = study_from_flags(
        config,
        overrides=rest,
        base_flags=opt.seed_overrides(flags),
        models=None if auto_tune_all else model,
        enhanced=None if auto_tune_all else enhanced,
        **{k: flags[k] for k in ("objectives", "sampler", "pruner", "storage", "timeout", "seed")},
        n_trials=trials,
    )
    opts = TuneOptions(
        **{k: flags[k] for k in _OPTION_FLAGS},
        best_params=best_files,
        save_dir=opt.writable(save_dir),
        locked=locked,
        plugins=tuple(plugin or ()),
        report=not no_report,
        tracking=(tracking := opt.tracking_from(save_dir, flags)),
        source=str(config or "command line"),
        reference=not no_reference,
        portfolio=_no_model_named(config, model, enhanced, locked),
    )
    reporter = ConsoleReporter(console)
    if not auto_tune_all:
        tunelab.api.tune(cfg, opts, reporter=reporter)
    else:
        _compare_families(tunelab.api.auto_tune_all(cfg, family_labels(model, enhanced), opts, reporter=reporter))
    opt.print_tracking_hints(console, tracking)


def _best_params_files(best_params: Path | None, overrides: list[str] | None) -> tuple[Any, list[str]]:
    """``--best-params runs/*/phase*/best_params.json``: the shell passes the glob's other files as
    arguments.  Returns what --best-params names (one file, or the list of them) and the overrides left."""
    more = [o for o in overrides or [] if best_params is not None and "=" not in o and Path(o).is_file()]
    files = [best_params, *map(Path, more)] if best_params is not None and more else best_params
    return files, [o for o in overrides or [] if o not in more]


def _compare_families(results: list[Any]) -> None:
    """--auto-tune-all's comparison table (also written as <group>/comparison.csv); in a pipe or a
    log file it is printed whole (a wide console: no family or study name cut to "trans…")."""
    from rich.table import Table

    from tunelab.tune.reporting.report import comparison_rows, fmt_value
    from tunelab.tune.runner import comparison_file

    rows = comparison_rows(results)
    table = Table(title=f"families compared on {results[0].objectives[0]}", title_justify="left")
    cols = ["family", "value", "test_acc", "test_f1", "n_params", "complete", "pruned", "failed", "study"]
    cols = [c for c in cols if any(r.get(c) is not None for r in rows)]
    for c in cols:
        left = c in ("family", "study")
        table.add_column(c, justify="left" if left else "right", no_wrap=not left, overflow="fold")
    for r in rows:
        table.add_row(*("-" if r.get(c) is None else fmt_value(r[c]) for c in cols))
    out = console if console.is_terminal else Console(file=console.file, width=max(console.width, 200))
    out.print(table)
    out.print(f"comparison: {comparison_file(results)}", highlight=False, soft_wrap=True)


@app.command("space")
def space_cmd(
    overrides: opt.OverridesArg = None,
    config: StudyConfigOpt = None,
    show: Annotated[bool, typer.Option("--show/--no-show", help="print the space (the default)")] = True,
    model: ModelsOpt = None,
    enhanced: EnhancedOpt = None,
    phase: PhaseOpt = None,
    grid: GridOpt = None,
    plugin: opt.PluginOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print as JSON")] = False,
) -> None:
    """Show a study's search space without running it: parameters, ranges, conditions, grid sizes."""
    load_plugins(plugin)
    import dataclasses
    import json

    from rich.table import Table

    from tunelab.config.flags import study_from_flags
    from tunelab.tune.space import build_space, grid_size

    cfg, locked = study_from_flags(config, overrides=list(overrides or []), models=model, enhanced=enhanced)
    source = str(config or "command line")
    space = build_space(cfg, phase=phase, grid=grid, locked=locked, source=source)
    space.check_values(source)  # what tune would refuse, `space` refuses too
    grids = {name: grid_size(g) for name, g in cfg.grids.items()}
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "params": [dataclasses.asdict(r) for r in space.rows()],
                    "size": space.size(),
                    "grids": grids,
                    "phases": list(cfg.phases),
                }
            )
        )
        return
    if not show:
        return
    table = Table(
        title=f"search space of {cfg.name}"
        + (f" — phase {phase}" if phase else "")
        + (f" — grid {grid}" if grid else ""),
        title_justify="left",
    )
    for col in ("parameter", "type", "range", "when", "families", "values"):
        table.add_column(col, overflow="fold")
    for r in space.rows():
        table.add_row(r.key, r.type, r.range, r.when, r.families, "" if r.size is None else str(r.size))
    console.print(table)
    size = space.size()
    console.print(
        f"combinations: {size:,}" if size is not None else "combinations: continuous (unbounded)", highlight=False
    )
    for name, n in grids.items():
        console.print(f"grid '{name}': {n:,} combinations", highlight=False)
    if cfg.phases:
        console.print("phases: " + ", ".join(cfg.phases), highlight=False)
