"""``tunelab datasets`` and ``tunelab models``: what is registered."""

from __future__ import annotations

from typing import Annotated

import typer

from tunelab.cli import app, console, load_plugins
from tunelab.cli.options import PluginOpt

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

    from tunelab.config.families import ALIASES, resolve_family
    from tunelab.models.catalog import dataset_meta, describe_families
    from tunelab.registry import MODELS

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
