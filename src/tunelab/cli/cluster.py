"""The commands for many machines: ``storage-server``, ``worker`` and ``pull`` (registered on
:data:`tunelab.cli.app`; kept apart from the single-host commands)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from tunelab.cli import app, console

#: tests only: the host identity a worker claims trials under, so one machine can play several hosts
HOST_ID_ENV = "TUNELAB_HOST_ID"


def host_id_from_env() -> str | None:
    """The test-only host override (``TUNELAB_HOST_ID``), applied to this process's trial claims."""
    from tunelab.tune.execution.owners import set_host_id

    value = os.environ.get(HOST_ID_ENV) or None
    set_host_id(value)
    return value


ArtifactsOpt = Annotated[
    str | None,
    typer.Option(
        "--artifacts",
        help="this host's path (or URL) to the study's artifact store (default: the one `tunelab tune --artifacts` stored)",
    ),
]


@app.command("storage-server")
def storage_server_cmd(
    storage: Annotated[
        str, typer.Option("--storage", help="the database to serve, e.g. postgresql://user:pw@db-host/optuna")
    ],
    host: Annotated[
        str, typer.Option("--host", help="interface to listen on (loopback by default; 0.0.0.0 for other hosts)")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="port to listen on")] = 13000,
) -> None:
    """Serve a study database to many workers: they use --storage grpc://HOST:PORT (Optuna's gRPC proxy)."""
    from tunelab.storage import mask_url, serve

    def ready(url: str) -> None:
        console.print(f"storage server for {mask_url(storage)}: [bold]{url}[/] (Ctrl+C to stop)", highlight=False)

    try:
        serve(storage, host=host, port=port, on_ready=ready)
    except KeyboardInterrupt:
        console.print("storage server stopped", highlight=False)


__all__ = ["HOST_ID_ENV", "host_id_from_env", "pull_cmd", "storage_server_cmd", "worker_cmd"]


@app.command("worker")
def worker_cmd(
    storage: Annotated[
        str, typer.Option("--storage", help="the study's storage: postgresql://... or grpc://HOST:PORT")
    ],
    study_name: Annotated[str, typer.Option("--study-name", "--study", help="the study to join")],
    devices: Annotated[
        str | None,
        typer.Option("--devices", help="one worker per device: cuda:0,cuda:1,... or all (default: one worker)"),
    ] = None,
    save_dir: Annotated[Path, typer.Option("--save-dir", help="where this host writes its trial folders")] = Path(
        "runs"
    ),
    plugin: Annotated[list[str] | None, typer.Option("--plugin", help="module or .py file to import")] = None,
    artifacts: ArtifactsOpt = None,
) -> None:
    """Join a study from any host and run its trials until the study's budget is spent."""
    from tunelab.cli import load_plugins
    from tunelab.storage import mask_url
    from tunelab.tune.execution.cluster import join_study

    load_plugins(plugin)
    console.print(f"worker: study [bold]{study_name}[/] in {mask_url(storage)}", highlight=False)
    states = join_study(
        storage,
        study_name,
        save_dir=save_dir,
        devices=devices,
        host_id=host_id_from_env(),
        plugins=tuple(plugin or ()),
        artifacts=artifacts,
    )
    console.print("study " + study_name + ": " + ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items())))


@app.command("pull")
def pull_cmd(
    storage: Annotated[
        str, typer.Option("--storage", help="the study's storage: postgresql://... or grpc://HOST:PORT")
    ],
    study_name: Annotated[str, typer.Option("--study-name", "--study", help="the study to pull")],
    save_dir: Annotated[Path, typer.Option("--save-dir", help="the study directory goes to SAVE_DIR/<study>")] = Path(
        "runs"
    ),
    artifacts: ArtifactsOpt = None,
    checkpoints: Annotated[
        bool,
        typer.Option("--checkpoints", help="every trial's checkpoint too (for tunelab ensemble), not only the best"),
    ] = False,
    no_report: Annotated[bool, typer.Option("--no-report", help="skip the analysis (plots, report.html)")] = False,
) -> None:
    """Build the study directory here (best_model.pt, trials.csv, study_results.json, report.html) from its storage and artifacts."""
    from tunelab.cli.options import writable
    from tunelab.pull import pull_study

    got = pull_study(
        storage,
        study_name,
        writable(save_dir),
        artifacts=artifacts,
        checkpoints=checkpoints,
        report=not no_report,
    )
    best = f"best trial {got.best_number}" if got.best_number is not None else "no complete trial yet"
    model = f" → {got.best_model}" if got.best_model else " (its best_model.pt is in no artifact store)"
    console.print(
        f"pulled {got.n_trials} trials of {study_name} into {got.study_dir}: {got.fetched} files from "
        f"{got.store or 'no artifact store'}; {best}{model if got.best_number is not None else ''}",
        highlight=False,
        markup=False,
    )
    if got.report is not None:
        console.print(f"report: {got.report}", highlight=False, markup=False)


host_id_from_env()  # the CLI is the layer that reads the environment
