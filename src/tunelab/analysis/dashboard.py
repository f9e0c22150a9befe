"""``tunelab dashboard``: optuna-dashboard on a study's storage, on loopback by default.

A study directory names its storage in ``study.json`` (``{"storage": url, "study_name": name}``,
written by ``tune``), so ``tunelab dashboard runs/my-study`` needs no URL; ``--storage URL`` alone
serves every study in that storage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tunelab.errors import UserError
from tunelab.track.base import require

__all__ = ["DashboardTarget", "resolve_target", "serve", "study_url"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DashboardTarget:
    """What to serve: an Optuna storage URL, and the study to open first (if known)."""

    storage: str
    study_name: str | None = None


def resolve_target(
    study_dir: Path | None = None, storage: str | None = None, study_name: str | None = None
) -> DashboardTarget:
    """The storage (and study) of ``study_dir``'s study.json, or the ``storage`` URL given."""
    from tunelab.analysis.source import resolve_study

    if study_dir is None and study_name is None and storage is not None:
        path = storage.removeprefix("sqlite:///") if storage.startswith("sqlite:///") else None
        # Opening a missing SQLite file would silently create an empty database: refuse instead.
        if path is not None and ":memory:" not in path and not Path(path).is_file():
            raise UserError(
                f"--storage {storage}: file {path} not found (relative paths are read from the working directory)"
            )
        return DashboardTarget(storage)
    ref = resolve_study(study_dir, storage=storage, study_name=study_name)
    return DashboardTarget(ref.storage, ref.study_name)


def study_url(target: DashboardTarget, host: str, port: int) -> str:
    """The dashboard page of the target study, or the study list."""
    base = f"http://{host}:{port}/dashboard"
    if target.study_name is None:
        return base
    from tunelab.storage import make_storage

    try:
        study_id = make_storage(target.storage).get_study_id_from_name(target.study_name)
    except KeyError:
        raise UserError(f"--study {target.study_name}: no such study in the storage of this study directory") from None
    return f"{base}/studies/{study_id}"


def serve(
    target: DashboardTarget, host: str = "127.0.0.1", port: int = 8080, on_ready: Callable[[str], None] | None = None
) -> None:
    """Run optuna-dashboard until interrupted (blocks); ``on_ready`` gets the study's page URL first."""
    optuna_dashboard = require("optuna_dashboard", "optuna-dashboard", "dashboard", "tunelab dashboard")
    from tunelab.storage import make_storage

    storage = make_storage(target.storage)  # journal files, redis and RDB URLs alike; errors name the URL
    url = study_url(target, host, port)
    if on_ready is not None:
        on_ready(url)
    try:
        optuna_dashboard.run_server(storage, host=host, port=port)
    except OSError as exc:
        raise UserError(
            f"dashboard: cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port"
        ) from None
