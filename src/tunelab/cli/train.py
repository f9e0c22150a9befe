"""``tunelab train``, ``evaluate``, ``ensemble`` and ``export``: one model at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tunelab.cli import app, console, load_plugins
from tunelab.cli import options as opt
from tunelab.errors import UserError


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
            console.print(
                "  ".join(f"{c:>{self._width(c)}}" for c in self.shown), style="bold", highlight=False, soft_wrap=True
            )  # opt.fmt: skip
        mark = " *" if report.improved else ""  # type: ignore[attr-defined]
        cells = (f"{opt.fmt(metrics[c]) if c in metrics else '-':>{self._width(c)}}" for c in self.shown)
        console.print("  ".join(cells) + mark, highlight=False, soft_wrap=True)

    def on_fit_end(self, ctx: object, result: object) -> None:
        return None


def _run_name(model: str) -> str:
    import time

    return f"{model}-{time.strftime('%Y%m%d-%H%M%S')}"


# --------------------------------------------------------------------------- train / evaluate


@app.command()
def train(
    overrides: opt.OverridesArg = None,
    config: opt.ConfigOpt = None,
    save_dir: opt.SaveDirOpt = Path("runs"),
    name: Annotated[str | None, typer.Option("--name", help="run directory name (default: model-timestamp)")] = None,
    model: Annotated[str | None, typer.Option("--model", "--model-type", help="model family")] = None,
    epochs: opt.EpochsOpt = None,
    patience: opt.PatienceOpt = None,
    batch_size: opt.BatchOpt = None,
    lr: Annotated[float | None, typer.Option("--lr", help="train.lr")] = None,
    device: opt.DeviceOpt = None,
    data_path: opt.DataPathOpt = None,
    dataset: opt.DatasetOpt = None,
    classes: opt.ClassesOpt = None,
    seed: opt.SeedOpt = None,
    plugin: opt.PluginOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no per-epoch table")] = False,
    mlflow: opt.MlflowOpt = False,
    mlflow_uri: opt.MlflowUriOpt = None,
    wandb: opt.WandbOpt = False,
    wandb_project: opt.WandbProjectOpt = None,
    wandb_entity: opt.WandbEntityOpt = None,
    wandb_group: opt.WandbGroupOpt = None,
    tensorboard: opt.TensorboardOpt = False,
) -> None:
    """Train one model from a config file and/or dotted overrides; writes a run directory."""
    flags = dict(locals())  # every flag by name: the config is built from them below
    load_plugins(plugin)
    import tunelab.api
    from tunelab.config.loader import load_run_config

    cfg = load_run_config(config, opt.seed_overrides(flags, first=("model", "lr")) + list(overrides or []))
    run_dir = opt.writable(save_dir) / (name or _run_name(cfg.model.name))
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UserError(f"{run_dir}: run directory already exists; pick another --name or --save-dir")
    tracking = opt.tracking_from(save_dir, flags)

    def announce(cfg: Any, picked: str) -> None:
        console.print(picked, highlight=False, soft_wrap=True)
        where = f"[bold]{cfg.model.name}[/] on [bold]{cfg.data.path or cfg.data.name}[/] → {run_dir}"
        console.print(f"training {where}", highlight=False, soft_wrap=True)

    callbacks: list[Any] = [] if quiet else [ConsoleTable()]
    result = tunelab.api.train(cfg, run_dir=run_dir, callbacks=callbacks, tracking=tracking, on_start=announce)
    m = result.metrics
    shown = {k: v for k, v in m.items() if k.startswith("test_") or k in ("val_loss", "val_acc", "val_f1")}
    console.print(
        f"best epoch {result.best_epoch}/{result.epochs} ({result.stop_reason}), {result.n_params:,} parameters, "
        f"{result.seconds:.1f}s\n" + "  ".join(f"{k}={opt.fmt(v)}" for k, v in shown.items()),
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"run directory: {run_dir}", highlight=False, soft_wrap=True)
    opt.print_tracking_hints(console, tracking)


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="run or study directory, or a best_model.pt checkpoint")],
    device: opt.DeviceOpt = None,
    plugin: opt.PluginOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print metrics as JSON")] = False,
    data_path: Annotated[
        str | None, typer.Option("--data-path", help="the data file or folder here (default: the saved data.path)")
    ] = None,
) -> None:
    """Re-evaluate a trained model on its validation and test splits, without training (the seeds' --test-only)."""
    load_plugins(plugin)
    import json

    from tunelab.ensemble import evaluate_ensemble, is_ensemble
    from tunelab.pull import fill_best_model
    from tunelab.train.checkpoint import evaluate_checkpoint

    fill_best_model(run)  # a study whose best trial ran on another host: from its artifact store
    if is_ensemble(run):
        metrics = evaluate_ensemble(run, device or "auto")
    else:
        metrics = evaluate_checkpoint(run, device or "auto", data_path)
    if as_json:
        console.print_json(json.dumps(metrics))
        return
    for k, v in metrics.items():
        console.print(f"{k:>18}  {opt.fmt(v)}", highlight=False)


@app.command("ensemble")
def ensemble_cmd(
    study_dir: Annotated[Path, typer.Argument(help="a runs/<study> folder written by `tunelab tune`")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="how many of the best trials to average")] = 5,
    with_reference: Annotated[
        bool | None,
        typer.Option(
            "--with-reference/--without-reference",
            help="MiniRocket (refitted) is the ensemble's other half (default: when the study fitted it as its reference)",
            show_default=False,
        ),
    ] = None,
    reference_weight: Annotated[
        float | None,
        typer.Option(
            "--reference-weight",
            help="MiniRocket's share with --with-reference (default 0.5); the trials share the rest",
        ),
    ] = None,
    device: opt.DeviceOpt = None,
    plugin: opt.PluginOpt = None,
) -> None:
    """Average the calibrated probabilities of the study's K best trials and MiniRocket; score on test; save STUDY_DIR/ensemble/."""
    load_plugins(plugin)
    from tunelab.ensemble import REFERENCE_WEIGHT, build_ensemble, describe

    weight = REFERENCE_WEIGHT if reference_weight is None else reference_weight
    result = build_ensemble(
        study_dir, top_k, with_reference=with_reference, reference_weight=weight, device=device or "auto"
    )
    for line in describe(result):
        console.print(line, highlight=False)
    console.print(
        f"saved {result.path}  (re-evaluate: tunelab evaluate {result.path}; export: tunelab export {result.path})",
        highlight=False,
        soft_wrap=True,
    )


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
    plugin: opt.PluginOpt = None,
) -> None:
    """Export the best model with dynamic batch and length axes (inputs x [B,T,C], lengths [B]), checked against PyTorch."""
    load_plugins(plugin)
    from tunelab.export import export_run
    from tunelab.pull import fill_best_model

    fill_best_model(run)  # a study whose best trial ran on another host: from its artifact store
    result = export_run(run, fmt, out, normalize=normalization)
    console.print(
        f"exported {result.family} to {result.path} ({result.format} via {result.exporter}); "
        f"max |diff| vs PyTorch on variable-length batches: {result.max_abs_diff:.2g}\n"
        f"inputs: x {result.inputs['x']}; lengths {result.inputs['lengths']} → out {result.output}\n"
        f"details (classes, normalisation): {result.path}.json",
        highlight=False,
        markup=False,
    )
