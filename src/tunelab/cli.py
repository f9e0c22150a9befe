"""The command line: each command parses flags, builds configs and calls the library.

Errors the user can fix (``UserError``) print as one line and exit with code 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from tunelab.errors import UserError

app = typer.Typer(
    name="tunelab",
    help="Find the best model and hyperparameters for sequence data, fast, and show why.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=False)
err_console = Console(stderr=True)

PluginOpt = Annotated[
    list[str] | None, typer.Option("--plugin", help="python file or module that registers models/datasets (repeatable)")
]


def load_plugins(plugins: list[str] | None) -> None:
    """Import user code that registers models and datasets."""
    from tunelab.plugins import load_plugin

    for p in plugins or []:
        load_plugin(p)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl+C: the running trial is failed as "interrupted" and the study's
    artifacts are written before the process exits (code 143)."""


def _click_error(exc: BaseException, name: str) -> bool:
    """Whether ``exc`` is click's exception class ``name``: typer >= 0.2x vendors click as
    ``typer._click``, whose classes are not ``click``'s own, so match the class by name."""
    return any(c.__name__ == name and c.__module__.startswith(("click", "typer")) for c in type(exc).__mro__)


def _seed_flag_hint(flag: str, where: str) -> str:
    """What to type instead of a seed script's flag: ``--test-only`` is ``tunelab evaluate``, and
    ``--hidden-dim 128`` is the override ``model.hidden_dim=128``."""
    if flag == "--test-only" and where == "tunelab evaluate":
        return "; evaluate never trains, drop it"
    if flag == "--test-only":
        return "; to evaluate a trained run without training use 'tunelab evaluate RUN_DIR'"
    if not flag.startswith("--") or where.split()[1:2] not in (["train"], ["tune"], ["experiments"]):
        return ""
    from tunelab.config import dotted_keys

    field = flag[2:].split("=", 1)[0].replace("-", "_")
    keys = [k for k in dotted_keys() if k.rsplit(".", 1)[-1] == field]
    if not keys:
        return ""
    args = sys.argv[1:]
    value = flag.split("=", 1)[1] if "=" in flag else None
    for i, arg in enumerate(args):
        if arg.split("=", 1)[0] == flag.split("=", 1)[0]:
            value = arg.split("=", 1)[1] if "=" in arg else (args[i + 1] if i + 1 < len(args) else None)
            break
    shown = value if value is not None and not value.startswith("-") else "VALUE"
    return "; settings are dotted overrides: " + " or ".join(f"{k}={shown}" for k in keys[:3])


def main() -> None:
    """Console entry point: run the app, turning UserError into one line and exit code 2;
    Ctrl+C exits 130 and SIGTERM 143, each after the current trial is recorded as interrupted."""
    import signal

    terminated: list[int] = []

    def on_sigterm(signum: int, frame: object) -> None:
        terminated.append(signum)
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread: signals stay as they are
        previous = None
    try:
        # typer turns KeyboardInterrupt (and typer.Exit) into an exit code that it *returns* when
        # standalone_mode is off: it must reach sys.exit, or Ctrl+C would exit 0
        code = app(standalone_mode=False)
    except UserError as exc:
        from rich.markup import escape  # messages quote shapes like [sum(T_i), C]: text, not markup

        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    except Exception as exc:  # click's usage errors (unknown option, missing or bad argument)
        if _click_error(exc, "Exit"):
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        if _click_error(exc, "ClickException"):
            from rich.markup import escape

            ctx, names = getattr(exc, "ctx", None), []
            while ctx is not None and ctx.parent is not None:  # the root's name is however we were started
                names.append(ctx.info_name)
                ctx = ctx.parent
            where = " ".join(["tunelab", *reversed(names)])
            message = exc.format_message().rstrip(".")  # type: ignore[attr-defined]
            if _click_error(exc, "NoSuchOption"):
                message += _seed_flag_hint(str(getattr(exc, "option_name", "")), where)
            err_console.print(
                f"[bold red]error:[/] {escape(message)}; see '{where} --help'", highlight=False, soft_wrap=True
            )
            sys.exit(2)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if terminated:
        sys.exit(143)
    if isinstance(code, int) and code:
        sys.exit(code)


# --------------------------------------------------------------------------- shared flags

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="experiment YAML/JSON file")]
OverridesArg = Annotated[
    list[str] | None, typer.Argument(help="dotted overrides, e.g. train.lr=3e-4 model.hidden_dim=128")
]
SaveDirOpt = Annotated[Path, typer.Option("--save-dir", help="where runs and studies are written")]
EpochsOpt = Annotated[int | None, typer.Option("--epochs", help="train.max_epochs")]
PatienceOpt = Annotated[int | None, typer.Option("--patience", help="train.early_stopping.patience")]
BatchOpt = Annotated[int | None, typer.Option("--batch-size", help="train.batch_size")]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="auto | cpu | cuda | cuda:N | mps")]
DataPathOpt = Annotated[str | None, typer.Option("--data-path", help="data file or folder (.ts/.npz/.csv/.parquet)")]
DatasetOpt = Annotated[str | None, typer.Option("--dataset", help="built-in dataset name (see `tunelab datasets`)")]
ClassesOpt = Annotated[int | None, typer.Option("--classes", help="keep the N most frequent classes")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="random seed")]
MlflowOpt = Annotated[
    bool,
    typer.Option(
        "--mlflow",
        help="log to MLflow: sqlite:///<save-dir>/mlflow.db (see `mlflow ui --backend-store-uri`) unless --mlflow-uri",
    ),
]
MlflowUriOpt = Annotated[
    str | None,
    typer.Option(
        "--mlflow-uri", metavar="URI", help="MLflow tracking URI, e.g. http://127.0.0.1:5000 (implies --mlflow)"
    ),
]
WandbOpt = Annotated[
    bool,
    typer.Option(
        "--wandb", help="log to Weights & Biases (offline under <save-dir>/wandb unless WANDB_API_KEY is set)"
    ),
]
WandbProjectOpt = Annotated[
    str | None, typer.Option("--wandb-project", help="W&B project (implies --wandb; default tunelab)")
]
WandbEntityOpt = Annotated[str | None, typer.Option("--wandb-entity", help="W&B user or team (implies --wandb)")]
WandbGroupOpt = Annotated[
    str | None, typer.Option("--wandb-group", help="W&B run group (implies --wandb; default: the study name)")
]
TensorboardOpt = Annotated[
    bool, typer.Option("--tensorboard", help="write TensorBoard scalars under <save-dir>/tensorboard")
]


def tracking_config(
    save_dir: Path,
    *,
    mlflow: bool = False,
    mlflow_uri: str | None = None,
    wandb: bool = False,
    wandb_project: str | None = None,
    wandb_entity: str | None = None,
    wandb_group: str | None = None,
    tensorboard: bool = False,
) -> Any:
    """The TrackingConfig of the tracking flags.  The CLI, not the library, reads the environment:
    W&B runs online only when WANDB_API_KEY is set."""
    import os

    from tunelab.track import TrackingConfig, WandbConfig

    wb = WandbConfig(
        enabled=wandb or any(v is not None for v in (wandb_project, wandb_entity, wandb_group)),
        project=wandb_project or "tunelab",
        entity=wandb_entity,
        group=wandb_group,
        mode="online" if os.environ.get("WANDB_API_KEY") else "offline",
    )
    return TrackingConfig(
        save_dir=save_dir, mlflow=mlflow_uri or ("auto" if mlflow else None), wandb=wb, tensorboard=tensorboard
    )


def tracking_hints(tracking: Any) -> list[str]:
    """Where each enabled tracker put the data, and how to open it."""
    hints = []
    if tracking.mlflow is not None:
        uri = tracking.mlflow_uri
        hints.append(f"MLflow: mlflow ui --backend-store-uri {uri}" if uri.startswith("sqlite:") else f"MLflow: {uri}")
    if tracking.wandb.enabled and tracking.wandb.mode == "offline":
        hints.append(f"W&B (offline): wandb sync {tracking.save_dir / 'wandb'}/offline-run-*")
    if tracking.tensorboard:
        hints.append(f"TensorBoard: tensorboard --logdir {tracking.save_dir / 'tensorboard'}")
    return hints


def flag_overrides(**flags: object) -> list[str]:
    """Dotted overrides for the seed-compatible flags that were given."""
    keys = {
        "epochs": "train.max_epochs",
        "patience": "train.early_stopping.patience",
        "batch_size": "train.batch_size",
        "device": "device",
        "data_path": "data.path",
        "dataset": "data.name",
        "classes": "data.classes",
        "seed": "seed",
        "model": "model.name",
        "lr": "train.lr",
    }
    return [f"{keys[k]}={v}" for k, v in flags.items() if v is not None]


def _fmt(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class ConsoleTable:
    """A live per-epoch table: one row per epoch as it finishes (works in a pipe too).

    ``lr`` is the learning rate of the model's body (``train.lr`` as scheduled); ``lr_head`` is
    shown beside it only when the head trains at another rate.  Columns that do not fit the
    console's width are dropped (the least telling first), so a row never wraps into fragments.
    """

    columns = (
        "epoch",
        "train_loss",
        "val_loss",
        "val_acc",
        "val_f1",
        "val_mse",
        "val_snr_db",
        "lr",
        "lr_head",
        "grad_norm",
        "seconds",
    )
    drop_first = ("grad_norm", "lr_head", "seconds", "val_snr_db")  # when the console is too narrow

    def __init__(self) -> None:
        self.shown: tuple[str, ...] = ()

    def on_fit_start(self, ctx: object) -> None:
        self.shown = ()

    @staticmethod
    def _lrs(metrics: dict[str, object]) -> dict[str, object]:
        groups = {k.removeprefix("lr/"): v for k, v in metrics.items() if k.startswith("lr/")}
        if not groups:
            return {}
        body = groups.get("body", next(iter(groups.values())))
        out = {"lr": body}
        if "head" in groups and groups["head"] != body:
            out["lr_head"] = groups["head"]
        return out

    @staticmethod
    def _width(col: str) -> int:
        return max(len(col), 9)  # "1.234e-05" is 9 characters

    def on_epoch_end(self, ctx: object, report: object) -> None:
        metrics = {"epoch": report.epoch, **report.metrics}  # type: ignore[attr-defined]
        metrics |= self._lrs(metrics)
        if not self.shown:
            shown = [c for c in self.columns if c in metrics]
            for col in self.drop_first:
                if sum(self._width(c) + 2 for c in shown) + 2 <= console.width:
                    break
                if col in shown:
                    shown.remove(col)
            self.shown = tuple(shown)
            console.print("  ".join(f"{c:>{self._width(c)}}" for c in self.shown), style="bold", highlight=False, soft_wrap=True)  # fmt: skip
        mark = " *" if report.improved else ""  # type: ignore[attr-defined]
        cells = (f"{_fmt(metrics[c]) if c in metrics else '-':>{self._width(c)}}" for c in self.shown)
        console.print("  ".join(cells) + mark, highlight=False, soft_wrap=True)

    def on_fit_end(self, ctx: object, result: object) -> None:
        return None


def _run_name(model: str) -> str:
    import time

    return f"{model}-{time.strftime('%Y%m%d-%H%M%S')}"


# --------------------------------------------------------------------------- train / evaluate


@app.command()
def train(
    overrides: OverridesArg = None,
    config: ConfigOpt = None,
    save_dir: SaveDirOpt = Path("runs"),
    name: Annotated[str | None, typer.Option("--name", help="run directory name (default: model-timestamp)")] = None,
    model: Annotated[str | None, typer.Option("--model", "--model-type", help="model family")] = None,
    epochs: EpochsOpt = None,
    patience: PatienceOpt = None,
    batch_size: BatchOpt = None,
    lr: Annotated[float | None, typer.Option("--lr", help="train.lr")] = None,
    device: DeviceOpt = None,
    data_path: DataPathOpt = None,
    dataset: DatasetOpt = None,
    classes: ClassesOpt = None,
    seed: SeedOpt = None,
    plugin: PluginOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no per-epoch table")] = False,
    mlflow: MlflowOpt = False,
    mlflow_uri: MlflowUriOpt = None,
    wandb: WandbOpt = False,
    wandb_project: WandbProjectOpt = None,
    wandb_entity: WandbEntityOpt = None,
    wandb_group: WandbGroupOpt = None,
    tensorboard: TensorboardOpt = False,
) -> None:
    """Train one model from a config file and/or dotted overrides; writes a run directory."""
    load_plugins(plugin)
    from tunelab.config import load_config
    from tunelab.train import fit

    flags = flag_overrides(
        model=model,
        epochs=epochs,
        patience=patience,
        batch_size=batch_size,
        lr=lr,
        device=device,
        data_path=data_path,
        dataset=dataset,
        classes=classes,
        seed=seed,
    )
    try:
        cfg = load_config(config, flags + list(overrides or []))
    except UserError:
        if config is not None:  # a study file or an experiment set given by mistake: say so
            from tunelab.config import load_mapping
            from tunelab.tune.spec import check_kind

            check_kind(load_mapping(config), str(config), "run config")
        raise
    run_dir = _writable(save_dir) / (name or _run_name(cfg.model.name))
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UserError(f"{run_dir}: run directory already exists; pick another --name or --save-dir")
    from tunelab.budget import data_size, resolve_defaults
    from tunelab.data import prepare

    splits = prepare(cfg.data, cfg.seed)
    cfg, picked = resolve_defaults(cfg, data_size(splits))
    console.print(picked, highlight=False, soft_wrap=True)
    callbacks: list[object] = [] if quiet else [ConsoleTable()]
    console.print(
        f"training [bold]{cfg.model.name}[/] on [bold]{cfg.data.path or cfg.data.name}[/] → {run_dir}",
        highlight=False,
        soft_wrap=True,
    )
    from tunelab.track import run_tracking

    tracking = tracking_config(
        save_dir,
        mlflow=mlflow,
        mlflow_uri=mlflow_uri,
        wandb=wandb,
        wandb_project=wandb_project,
        wandb_entity=wandb_entity,
        wandb_group=wandb_group,
        tensorboard=tensorboard,
    )
    from tunelab.train import Diverged

    existed = run_dir.exists()
    try:
        with run_tracking(tracking, run_dir.name) as trackers:  # trackers first: they see every epoch
            result = fit(cfg, data=splits, callbacks=[*trackers, *callbacks], run_dir=run_dir)  # type: ignore[list-item]
    except Diverged as exc:
        if not existed:  # nothing half-written: the run has no model to keep
            import shutil

            shutil.rmtree(run_dir, ignore_errors=True)
        clip = "lower train.clip_norm" if cfg.train.clip_norm else "enable clipping (train.clip_norm=1.0)"
        raise UserError(
            f"training {exc} (train.lr={cfg.train.lr:g}); lower train.lr or {clip}, and check the data for NaN"
        ) from None
    m = result.metrics
    shown = {k: v for k, v in m.items() if k.startswith("test_") or k in ("val_loss", "val_acc", "val_f1")}
    console.print(
        f"best epoch {result.best_epoch}/{result.epochs} ({result.stop_reason}), {result.n_params:,} parameters, "
        f"{result.seconds:.1f}s\n" + "  ".join(f"{k}={_fmt(v)}" for k, v in shown.items()),
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"run directory: {run_dir}", highlight=False, soft_wrap=True)
    for hint in tracking_hints(tracking):
        console.print(hint, highlight=False, soft_wrap=True)  # commands stay copy-pastable


def _writable(path: Path) -> Path:
    """Fail now, not after training, where ``--save-dir`` cannot be written; creates nothing (what
    writes there creates it), so a run stopped by bad input leaves no empty folder."""
    here = path.absolute()
    existing = next(p for p in (here, *here.parents) if p.exists())
    if not existing.is_dir():
        reason = f"{existing} is a file"
    elif not os.access(existing, os.W_OK | os.X_OK):
        reason = f"no permission to write in {existing}"
    else:
        return path
    raise UserError(f"--save-dir {path}: not writable ({reason}); choose a directory you can write to")


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="run or study directory, or a best_model.pt checkpoint")],
    device: DeviceOpt = None,
    plugin: PluginOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print metrics as JSON")] = False,
    data_path: Annotated[
        str | None, typer.Option("--data-path", help="the data file or folder here (default: the saved data.path)")
    ] = None,
) -> None:
    """Re-evaluate a trained model on its validation and test splits, without training (the seeds' --test-only)."""
    load_plugins(plugin)
    import json

    from tunelab.ensemble import evaluate_ensemble, is_ensemble
    from tunelab.train.checkpoint import evaluate_checkpoint

    if is_ensemble(run):
        metrics = evaluate_ensemble(run, device or "auto")
    else:
        metrics = evaluate_checkpoint(run, device or "auto", data_path)
    if as_json:
        console.print_json(json.dumps(metrics))
        return
    for k, v in metrics.items():
        console.print(f"{k:>18}  {_fmt(v)}", highlight=False)


@app.command("ensemble")
def ensemble_cmd(
    study_dir: Annotated[Path, typer.Argument(help="a runs/<study> folder written by `tunelab tune`")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="how many of the best trials to average")] = 5,
    with_reference: Annotated[
        bool, typer.Option("--with-reference", help="add MiniRocket as one more member (refitted; tunelab[baselines])")
    ] = False,
    device: DeviceOpt = None,
    plugin: PluginOpt = None,
) -> None:
    """Average the calibrated probabilities of the study's K best trials; score on test; save STUDY_DIR/ensemble/."""
    load_plugins(plugin)
    from tunelab.ensemble import build_ensemble, describe

    result = build_ensemble(study_dir, top_k, with_reference=with_reference, device=device or "auto")
    for line in describe(result):
        console.print(line, highlight=False)
    console.print(
        f"saved {result.path}  (re-evaluate: tunelab evaluate {result.path}; export: tunelab export {result.path})",
        highlight=False,
        soft_wrap=True,
    )


# --------------------------------------------------------------------------- datasets


@app.command("datasets")
def datasets_cmd(
    names: Annotated[list[str] | None, typer.Argument(help="datasets to show (default: all registered)")] = None,
    plugin: PluginOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print as JSON")] = False,
) -> None:
    """List built-in (and plugin) datasets with their shapes: sequences, channels, lengths, classes, task, split."""
    load_plugins(plugin)
    import dataclasses
    import json

    from rich.table import Table

    from tunelab.data.catalog import describe_datasets

    infos = describe_datasets(names)
    if as_json:
        console.print_json(json.dumps([dataclasses.asdict(i) for i in infos]))
        return
    from rich import box

    table = Table(
        title="datasets: use with data.name (options: data.options; your own files: data.path)",
        caption="out: classes, or regression targets / seq2seq output channels; split: official train/test",
        title_justify="left",
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    wide = console.width >= 110  # narrow terminals get the descriptions below the table
    for col in ("name", "task", "N", "C", "length", "out", "split"):
        table.add_column(col, no_wrap=True)
    if wide:
        table.add_column("description", overflow="fold", ratio=1)
    for i in infos:
        out = i.classes if i.task == "classification" else i.outputs
        cells = [i.name, i.task, str(i.n), str(i.channels), f"{i.min_len}-{i.max_len}", str(out), i.split or "-"]
        table.add_row(*cells, *([(i.note or i.doc).replace("``", "")] if wide else []))
    console.print(table)
    if not wide:
        for i in infos:
            console.print(f"[bold]{i.name}[/]: {(i.note or i.doc).replace('``', '')}", highlight=False)


# --------------------------------------------------------------------------- models


@app.command("models")
def models_cmd(
    names: Annotated[list[str] | None, typer.Argument(help="families to show (default: all)")] = None,
    dataset: Annotated[str, typer.Option("--dataset", help="count parameters for this dataset")] = "japanese_vowels",
    plugin: PluginOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print as JSON")] = False,
) -> None:
    """List model families: tunable fields (shape/value), defaults, parameter count on a dataset."""
    load_plugins(plugin)
    import dataclasses
    import json

    from rich.table import Table

    from tunelab.models.catalog import dataset_meta, describe_families
    from tunelab.registry import MODELS
    from tunelab.tune.families import ALIASES, resolve_family

    aliases = {a: resolve_family(a) for a in sorted(ALIASES) if ALIASES[a][0] in MODELS}
    shown = [resolve_family(n).name for n in names or []]  # an alias shows its family; unknown: one line
    families = describe_families(dataset_meta(dataset), list(dict.fromkeys(shown)) if names else None)
    if as_json:
        console.print_json(json.dumps([dataclasses.asdict(f) for f in families], default=str))
        return
    for fam in families:
        size = (
            f"{fam.n_params:,} parameters on {dataset}"
            if fam.n_params is not None
            else f"not buildable for {dataset}: {fam.note}"
        )
        table = Table(
            title=f"[bold]{fam.name}[/] — {fam.doc}",
            caption=f"{size}; tasks: {', '.join(fam.tasks)}",
            title_justify="left",
            caption_justify="left",
        )
        for col in ("field", "type", "default", "kind", "description"):
            table.add_column(col, overflow="fold")
        for f in fam.fields:
            table.add_row(f"model.{f.name}", f.type, str(f.default), f.kind, f.description)
        console.print(table)
    picked = [a for a in names or aliases if a in aliases]
    if picked:
        table = Table(
            title="[bold]aliases[/]", caption="accepted wherever a model family is named", title_justify="left"
        )
        for col in ("alias", "family", "fixes"):
            table.add_column(col, overflow="fold")
        for a in picked:
            fixed = ", ".join(f"{k}={v}" for k, v in aliases[a].fixed.items())
            table.add_row(a, aliases[a].name, fixed or "-")
        console.print(table)


# --------------------------------------------------------------------------- export


@app.command("export")
def export_cmd(
    run: Annotated[Path, typer.Argument(help="run or study directory, or a best_model.pt checkpoint")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="onnx | torchscript")] = "onnx",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="output file (default: model.onnx / model.torchscript.pt beside the checkpoint)"
        ),
    ] = None,
    normalization: Annotated[
        bool,
        typer.Option(
            "--normalization/--no-normalization",
            help="put the data's normalisation inside the graph (raw inputs) or leave it to the caller",
        ),
    ] = True,
    plugin: PluginOpt = None,
) -> None:
    """Export the best model with dynamic batch and length axes (inputs x [B,T,C], lengths [B]), checked against PyTorch."""
    load_plugins(plugin)
    from tunelab.export import export_run

    result = export_run(run, fmt, out, normalize=normalization)
    console.print(
        f"exported {result.family} to {result.path} ({result.format} via {result.exporter}); "
        f"max |diff| vs PyTorch on variable-length batches: {result.max_abs_diff:.2g}\n"
        f"inputs: x {result.inputs['x']}; lengths {result.inputs['lengths']} → out {result.output}\n"
        f"details (classes, normalisation): {result.path}.json",
        highlight=False,
        markup=False,
    )


# --------------------------------------------------------------------------- experiments / compare


def _styled(comparison: object, name: str, metric: str) -> object:
    """A comparison cell as rich Text: green/red when the interval says better/worse than the baseline."""
    from rich.text import Text

    row = comparison.row(name)  # type: ignore[attr-defined]
    stat = row.stats.get(metric)
    better = stat.better if stat is not None else None
    style = "green" if better else ("red" if better is False else "")
    return Text(comparison.cell(name, metric, sep="\n"), style=style)  # type: ignore[attr-defined]


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
    from rich.table import Table
    from rich.text import Text

    from tunelab.experiments import load_experiment_set, run_experiment_set
    from tunelab.experiments.runner import EXPERIMENT, SEED, lead_metrics
    from tunelab.experiments.spec import check_metric

    flags = flag_overrides(epochs=epochs, device=device)
    spec, jobs = load_experiment_set(file, flags + list(overrides or []))  # fail fast, before any storage is touched
    for m in metric or []:
        try:
            check_metric(m)
        except ValueError as exc:
            raise UserError(f"--metric {m}: {exc}") from None
    lead = (list(metric or spec.metrics) or ["val_loss", "val_acc", "test_acc", "test_mse"])[:3]
    count = [0]

    def progress(trial: object) -> None:
        count[0] += 1
        t = trial  # an optuna FrozenTrial
        attrs = t.user_attrs  # type: ignore[attr-defined]
        label = f"{attrs.get(EXPERIMENT)} seed {attrs.get(SEED)}"
        state = t.state.name  # type: ignore[attr-defined]
        if state == "COMPLETE":
            m = attrs.get("metrics") or {}
            shown = "  ".join(f"{k}={_fmt(m[k])}" for k in lead if k in m)
            console.print(
                f"[green]✓[/] {count[0]:>3}  {escape(label)}: {shown}  ({_fmt(float(attrs.get('seconds') or 0))}s)",
                highlight=False,
            )
        else:
            console.print(
                f"[yellow]✗[/] {count[0]:>3}  {escape(label)}: {state.lower()} ({escape(str(attrs.get('reason', '')))})",
                highlight=False,
            )

    console.print(
        f"experiment set [bold]{escape(spec.name)}[/]: {len(spec.experiments)} experiments, {len(jobs)} trials → {save_dir / spec.name}",
        highlight=False,
    )
    result = run_experiment_set(
        file,
        overrides=flags + list(overrides or []),
        save_dir=_writable(save_dir),
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
    console.print(table)
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
        typer.Option(
            "--reference", help="add a MiniRocket row fitted on the baseline's data splits (tunelab[baselines])"
        ),
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
        table.add_row("epochs", *(_fmt(r.epochs) if r.epochs == r.epochs else "—" for r in comp.rows))
        console.print(table)
        for e in entries:
            if e.reference and e.note:
                console.print(f"{e.name}: {e.note}", highlight=False, markup=False)
    if hint:
        from rich.markup import escape

        err_console.print(f"[yellow]note:[/] {escape(hint)}", highlight=False)


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


@app.command("tune")
def tune_cmd(
    overrides: OverridesArg = None,
    config: StudyConfigOpt = None,
    model: ModelsOpt = None,
    enhanced: EnhancedOpt = None,
    auto_tune_all: Annotated[
        bool,
        typer.Option(
            "--auto-tune-all",
            help="one study per family in turn (--model list, else BiLSTM standard/enhanced, transformer, TCN), then a comparison",
        ),
    ] = False,
    trials: Annotated[
        int | None,
        typer.Option("--trials", "--n-trials", min=1, help="trials to run now (default 20; a whole grid with --grid)"),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            min=1,
            help="seconds for the whole study: running trials stop at their next epoch end (default 600 with no --model)",
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="continue the study (--study-name, else the newest of this name)")
    ] = False,
    save_dir: SaveDirOpt = Path("runs"),
    study_name: Annotated[
        str | None, typer.Option("--study-name", help="exact study name (default: the study file's name + a timestamp)")
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            help="Optuna storage URL (default sqlite:///<save-dir>/tunelab.db; journal:///file.log; postgresql://...)",
        ),
    ] = None,
    best_params: Annotated[
        Path | None,
        typer.Option(
            "--best-params",
            help="best_params.json of an earlier phase, or several (a glob: later phases override earlier ones; default: found in the storage)",
        ),
    ] = None,
    phase: PhaseOpt = None,
    grid: GridOpt = None,
    sampler: Annotated[
        str | None, typer.Option("--sampler", help="tpe | random | grid | cmaes | gp | qmc | nsga2")
    ] = None,
    pruner: Annotated[
        str | None, typer.Option("--pruner", help="median | percentile | asha | hyperband | none")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="worker processes sharing the study")] = 1,
    pack_size: Annotated[
        str,
        typer.Option(
            "--pack-size",
            help="trials trained at once as one stacked model (same family and shapes): N, or auto (by GPU memory; 1 on CPU)",
        ),
    ] = "1",
    enqueue: Annotated[
        Path | None,
        typer.Option("--enqueue", help="JSON/YAML of known configurations (parameter → value) to evaluate first"),
    ] = None,
    objectives: Annotated[
        str | None,
        typer.Option("--objectives", "--objective", help="metric(s), e.g. val_f1 or val_f1,n_params (Pareto front)"),
    ] = None,
    epochs: EpochsOpt = None,
    patience: PatienceOpt = None,
    batch_size: BatchOpt = None,
    device: DeviceOpt = None,
    data_path: DataPathOpt = None,
    dataset: DatasetOpt = None,
    classes: ClassesOpt = None,
    seed: SeedOpt = None,
    plugin: PluginOpt = None,
    no_report: Annotated[
        bool, typer.Option("--no-report", help="skip the analysis (plots, report.html) at the end")
    ] = False,
    no_reference: Annotated[
        bool,
        typer.Option("--no-reference", help="skip the MiniRocket reference fitted on a classification study's split"),
    ] = False,
    wandb: WandbOpt = False,
    wandb_project: WandbProjectOpt = None,
    wandb_entity: WandbEntityOpt = None,
    wandb_group: WandbGroupOpt = None,
    mlflow: MlflowOpt = False,
    mlflow_uri: MlflowUriOpt = None,
    tensorboard: TensorboardOpt = False,
) -> None:
    """Search hyperparameters (and model families) with Optuna; writes runs/<study>/ with the best model."""
    load_plugins(plugin)
    import optuna

    from tunelab.tune import TuneOptions, tune
    from tunelab.tune import auto_tune_all as run_all
    from tunelab.tune.console import ConsoleReporter
    from tunelab.tune.flags import family_labels, study_from_flags

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the reporter prints Optuna-style lines itself
    flags = flag_overrides(
        epochs=epochs,
        patience=patience,
        batch_size=batch_size,
        device=device,
        data_path=data_path,
        dataset=dataset,
        classes=classes,
        seed=seed,
    )
    labels = family_labels(model, enhanced)
    # `--best-params runs/*/phase*/best_params.json`: the shell passes the glob's other files as arguments
    more = [o for o in overrides or [] if best_params is not None and "=" not in o and Path(o).is_file()]
    cfg, locked = study_from_flags(
        config,
        overrides=[o for o in overrides or [] if o not in more],
        base_flags=flags,
        models=None if auto_tune_all else model,
        enhanced=None if auto_tune_all else enhanced,
        objectives=objectives,
        sampler=sampler,
        pruner=pruner,
        storage=storage,
        n_trials=trials,
        timeout=timeout,
        seed=seed,
    )
    tracking = tracking_config(
        save_dir,
        mlflow=mlflow,
        mlflow_uri=mlflow_uri,
        wandb=wandb,
        wandb_project=wandb_project,
        wandb_entity=wandb_entity,
        wandb_group=wandb_group,
        tensorboard=tensorboard,
    )
    opts = TuneOptions(
        phase=phase,
        grid=grid,
        best_params=[best_params, *map(Path, more)] if best_params is not None and more else best_params,
        resume=resume,
        study_name=study_name,
        save_dir=_writable(save_dir),
        workers=workers,
        pack_size=pack_size,
        enqueue=enqueue,
        locked=locked,
        plugins=tuple(plugin or ()),
        report=not no_report,
        tracking=tracking,
        source=str(config or "command line"),
        reference=not no_reference,
        # no model named anywhere: the default portfolio (tunelab.tune.portfolio)
        portfolio=config is None and labels is None and not any(k.startswith("model.") for k in locked),
    )
    reporter = ConsoleReporter(console)
    if not auto_tune_all:
        tune(cfg, opts, reporter=reporter)
    else:
        _compare_families(run_all(cfg, labels, opts, reporter=reporter))
    if tracking.enabled:
        for hint in tracking_hints(tracking):
            console.print(hint, highlight=False, soft_wrap=True)  # commands stay copy-pastable


def _compare_families(results: list[Any]) -> None:
    """--auto-tune-all's comparison table (also written as <group>/comparison.csv); in a pipe or a
    log file it is printed whole (a wide console: no family or study name cut to "trans…")."""
    from rich.table import Table

    from tunelab.tune.report import comparison_rows, fmt_value
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
    overrides: OverridesArg = None,
    config: StudyConfigOpt = None,
    show: Annotated[bool, typer.Option("--show/--no-show", help="print the space (the default)")] = True,
    model: ModelsOpt = None,
    enhanced: EnhancedOpt = None,
    phase: PhaseOpt = None,
    grid: GridOpt = None,
    plugin: PluginOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print as JSON")] = False,
) -> None:
    """Show a study's search space without running it: parameters, ranges, conditions, grid sizes."""
    load_plugins(plugin)
    import dataclasses
    import json

    from rich.table import Table

    from tunelab.tune.flags import study_from_flags
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
    from tunelab.analysis import analyze
    from tunelab.analysis.console import renderables

    result = analyze(
        storage,
        study,
        out,
        study_dir=study_dir,
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
    from tunelab.track.dashboard import resolve_target, serve

    target = resolve_target(study_dir, storage, study)

    def ready(url: str) -> None:
        console.print(f"optuna-dashboard: [bold]{url}[/] (Ctrl+C to stop)", highlight=False, soft_wrap=True)

    try:
        serve(target, host=host, port=port, on_ready=ready)
    except KeyboardInterrupt:
        console.print("dashboard stopped", highlight=False)


from tunelab import cli_cluster as _cluster  # noqa: E402, F401  (registers storage-server, worker, pull)
