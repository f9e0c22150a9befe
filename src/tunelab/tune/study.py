"""Where a study lives and how it searches: storages, samplers, pruners, naming, resume.

Storage URLs:

* ``sqlite:///path.db``, ``postgresql://user:pw@host/db``, ``mysql://...`` → Optuna's RDBStorage,
  with heartbeats: a trial whose worker died (no heartbeat for ``grace_period`` s) is marked FAIL by
  the next worker or run and re-queued with the same parameters (``max_retry`` times).
  A relative sqlite path is relative to the working directory, as in SQLAlchemy; the default,
  ``sqlite:///<save-dir>/tunelab.db``, lies inside the save directory.
* ``journal:///path/to/study.log`` (or a path ending in ``.log``) → JournalStorage over a file;
  ``redis://host:port/db`` → JournalStorage over Redis.  These have no built-in heartbeat, so
  tunelab beats one itself (:mod:`tunelab.tune.heartbeat`) with the same retry rule.

Passwords never reach the console or a file: :func:`mask_url` is applied to every URL we show.
"""

from __future__ import annotations

import logging
import re
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.errors import UserError
from tunelab.tune.spec import PrunerConfig, SamplerConfig

if TYPE_CHECKING:
    import optuna

__all__ = [
    "default_storage",
    "find_latest_study",
    "has_password",
    "is_rdb",
    "journal_path",
    "local_file",
    "make_pruner",
    "make_sampler",
    "make_storage",
    "mask_url",
    "new_study_name",
    "nothing_to_resume",
    "open_study",
    "pruner_class",
    "sampler_class",
    "study_exists",
]

log = logging.getLogger(__name__)
_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^@\s]*)(?P<at>@)")


def mask_url(text: str) -> str:
    """Hide the password of every URL in ``text``: ``postgresql://u:***@host/db``."""
    return _PASSWORD.sub(lambda m: f"{m['head']}***{m['at']}", text)


def has_password(url: str) -> bool:
    """Whether ``url`` carries a password."""
    return bool(_PASSWORD.search(url))


def default_storage(save_dir: str | Path) -> str:
    """``sqlite:///<save_dir>/tunelab.db``: the study state sits beside the study folders."""
    return f"sqlite:///{Path(save_dir).as_posix()}/tunelab.db"


def journal_path(url: str) -> str | None:
    """The file of a journal-file storage URL, else None."""
    if url.startswith("journal://"):
        return url.removeprefix("journal://")  # journal:///abs/path or journal://relative/path
    if "://" not in url and url.endswith((".log", ".journal")):
        return url
    return None


def local_file(url: str) -> Path | None:
    """The file a SQLite or journal-file URL stores into (None for servers and in-memory SQLite)."""
    jp = journal_path(url)
    if jp is not None:
        return Path(jp)
    if url.startswith("sqlite:///") and ":memory:" not in url:
        return Path(url.removeprefix("sqlite:///").split("?")[0])
    return None


def is_rdb(url: str) -> bool:
    """Whether the URL is served by Optuna's RDBStorage (which beats its own heartbeat)."""
    return journal_path(url) is None and not url.startswith(("redis://", "rediss://"))


def _absolute_sqlite(url: str) -> str:
    """sqlite with a relative path → absolute, so study.json reopens from any directory."""
    path = local_file(url) if url.startswith("sqlite") else None
    if path is not None:
        return f"sqlite:///{path.resolve().as_posix()}"  # sqlite:////abs → /abs
    return url


def _with_driver(url: str) -> str:
    """``postgresql://`` means psycopg 3 to SQLAlchemy 2.1; use psycopg2 when only it is installed."""
    if url.startswith(("postgresql://", "postgres://")):
        import importlib.util

        if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
            return "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


def canonical_url(url: str) -> str:
    """The URL in the form stored in study.json (absolute sqlite/journal paths)."""
    jp = journal_path(url)
    if jp is not None:
        return f"journal://{Path(jp).resolve().as_posix()}"
    return _absolute_sqlite(url)


_STORAGES: dict[tuple[str, int, int, int], Any] = {}


def make_storage(
    url: str, *, heartbeat_interval: int = 10, grace_period: int = 60, max_retry: int = 2
) -> optuna.storages.BaseStorage:
    """Open (or create) the storage at ``url``; one instance per process and URL."""
    # keyed by the absolute path: a relative sqlite/journal URL means the directory of this call
    key = (canonical_url(url), heartbeat_interval, grace_period, max_retry)
    if key in _STORAGES:
        return _STORAGES[key]
    import optuna
    from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback

    shown = mask_url(url)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            jp = journal_path(url)
            if jp is not None:
                from optuna.storages.journal import JournalFileBackend

                Path(jp).parent.mkdir(parents=True, exist_ok=True)
                storage: Any = JournalStorage(JournalFileBackend(jp))
            elif url.startswith(("redis://", "rediss://")):
                from optuna.storages.journal import JournalRedisBackend

                storage = JournalStorage(JournalRedisBackend(url))
            else:
                url_abs = _with_driver(_absolute_sqlite(url))
                engine_kwargs: dict[str, Any] = {}
                if url_abs.startswith("sqlite"):
                    if (path := local_file(url_abs)) is not None:
                        path.parent.mkdir(parents=True, exist_ok=True)
                    engine_kwargs = {"connect_args": {"timeout": 60}}  # several workers share one file
                else:
                    engine_kwargs = {"pool_pre_ping": True}
                storage = RDBStorage(
                    url_abs,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=max_retry),
                )
    except ImportError as exc:
        extra = "redis" if url.startswith(("redis://", "rediss://")) else "postgres"
        raise UserError(
            f"storage {shown}: a driver is missing ({exc}); install it: pip install 'tunelab[{extra}]'"
        ) from None
    except Exception as exc:  # sqlalchemy/redis errors: bad URL, unreachable server, bad password
        first = mask_url(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)[:200]
        raise UserError(f"storage {shown}: cannot open it ({first}); check the URL, server and credentials") from None
    _STORAGES[key] = storage
    return storage


# --------------------------------------------------------------------------- samplers / pruners


def sampler_class(name: str) -> type:
    """The Optuna sampler class of a tunelab sampler name."""
    import optuna.samplers as s

    return {
        "tpe": s.TPESampler,
        "random": s.RandomSampler,
        "grid": s.GridSampler,
        "cmaes": s.CmaEsSampler,
        "gp": s.GPSampler,
        "qmc": s.QMCSampler,
        "nsga2": s.NSGAIISampler,
    }[name]


def pruner_class(name: str) -> type:
    """The Optuna pruner class of a tunelab pruner name."""
    import optuna.pruners as p

    return {
        "median": p.MedianPruner,
        "percentile": p.PercentilePruner,
        "asha": p.SuccessiveHalvingPruner,
        "successive_halving": p.SuccessiveHalvingPruner,
        "hyperband": p.HyperbandPruner,
        "none": p.NopPruner,
    }[name]


#: Defaults that differ from Optuna's (seed 001: 5 startup trials, 5 warmup epochs).
PRUNER_DEFAULTS: dict[str, dict[str, Any]] = {
    "median": {"n_startup_trials": 5, "n_warmup_steps": 5},
    "percentile": {"percentile": 25.0, "n_startup_trials": 5, "n_warmup_steps": 5},
    "hyperband": {"min_resource": 1, "reduction_factor": 3},
}
SAMPLER_DEFAULTS: dict[str, dict[str, Any]] = {
    "tpe": {"multivariate": True, "group": True},  # conditional spaces: model params together
    "qmc": {"scramble": True},
}


def make_sampler(
    cfg: SamplerConfig, seed: int | None, n_objectives: int = 1, grid_space: dict[str, list[Any]] | None = None
) -> optuna.samplers.BaseSampler:
    """Build the sampler; ``seed`` should differ between workers and resumed runs."""
    import optuna

    if n_objectives > 1 and cfg.name in ("cmaes",):
        raise UserError(f"sampler {cfg.name} optimizes one objective; use nsga2, tpe, gp or random for several")
    if cfg.name == "cmaes":
        try:
            import cmaes  # noqa: F401  (Optuna imports it lazily, mid-trial; fail here instead)
        except ImportError:
            raise UserError("sampler cmaes needs the 'cmaes' package: pip install cmaes") from None
    opts = {**SAMPLER_DEFAULTS.get(cfg.name, {}), **cfg.options}
    cls = sampler_class(cfg.name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if cfg.name == "grid":
            if not grid_space:
                raise UserError("the grid sampler needs a discrete space; define grids: and use --grid NAME")
            return cls(grid_space, seed=seed)  # type: ignore[no-any-return]
        if cfg.name == "tpe" and n_objectives > 1:
            opts.pop("group", None)
        return cls(seed=seed, **opts)  # type: ignore[no-any-return]


def make_pruner(cfg: PrunerConfig) -> optuna.pruners.BasePruner:
    """Build the pruner, with tunelab's defaults under the user's options."""
    opts = {**PRUNER_DEFAULTS.get(cfg.name, {}), **cfg.options}
    try:
        return pruner_class(cfg.name)(**opts)  # type: ignore[no-any-return]
    except (TypeError, ValueError) as exc:
        raise UserError(f"pruner {cfg.name}: {exc}; fix pruner.options") from None


# --------------------------------------------------------------------------- names / resume


def new_study_name(base: str) -> str:
    """A fresh study name: ``<base>-<YYYYmmdd-HHMMSS>`` (seed 001's timestamped names)."""
    return f"{base}-{time.strftime('%Y%m%d-%H%M%S')}"


def study_exists(storage: optuna.storages.BaseStorage, name: str) -> bool:
    import optuna

    try:
        storage.get_study_id_from_name(name)
    except KeyError:
        return False
    except optuna.exceptions.OptunaError:
        return False
    return True


_STAMP = re.compile(r"-\d{8}-\d{6}$")


def find_latest_study(storage: optuna.storages.BaseStorage, base: str, phase: str | None = None) -> str | None:
    """The newest study called ``<base>`` or ``<base>-<timestamp>`` (with ``/<phase>`` if given)."""
    import optuna

    candidates = []
    for s in optuna.get_all_study_summaries(storage, include_best_trial=False):
        name = s.study_name
        head, sep, tail = name.rpartition("/") if phase is not None else (name, "", "")
        if phase is not None and (not sep or tail != phase):
            continue
        if head == base or (head.startswith(base + "-") and _STAMP.search(head) and _STAMP.sub("", head) == base):
            candidates.append((s.datetime_start.timestamp() if s.datetime_start else 0.0, s._study_id, name))
    return max(candidates)[2] if candidates else None


def nothing_to_resume(name: str, shown_storage: str) -> UserError:
    """The refusal of ``--resume`` for study ``name``, which the storage does not hold."""
    return UserError(
        f"--resume: no study '{name}' in {shown_storage}; check --study-name and --storage (or drop --resume to start one)"
    )


def open_study(
    storage: optuna.storages.BaseStorage,
    name: str,
    *,
    directions: list[str],
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    resume: bool,
    shown_storage: str,
) -> optuna.Study:
    """Create a new study, or load an existing one with ``resume``.

    A new study whose name exists is refused (so two runs never mix by accident); resuming a
    study that does not exist is an error that names the storage.
    """
    import optuna

    exists = study_exists(storage, name)
    if resume:
        if not exists:
            raise nothing_to_resume(name, shown_storage)
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        if [d.name.lower() for d in study.directions] != directions:
            raise UserError(
                f"--resume: study '{name}' optimizes {[d.name.lower() for d in study.directions]}, not {directions}; keep the objective it started with"
            )
        return study
    if exists:
        raise UserError(
            f"study '{name}' already exists in {shown_storage}; pass --resume to continue it or choose another --study-name"
        )
    return optuna.create_study(storage=storage, study_name=name, directions=directions, sampler=sampler, pruner=pruner)  # type: ignore[arg-type]
