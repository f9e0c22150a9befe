"""Storage URLs: parse, mask, create and open every storage kind tunelab accepts.

* ``sqlite:///path.db``, ``postgresql://user:pw@host/db``, ``mysql://...`` → Optuna's RDBStorage,
  with heartbeats: a trial whose worker died (no heartbeat for ``grace_period`` s) is marked FAIL by
  the next worker or run and re-queued with the same parameters (``max_retry`` times).
  A relative sqlite path is relative to the working directory, as in SQLAlchemy; the default,
  ``sqlite:///<save-dir>/tunelab.db``, lies inside the save directory.  ``postgresql://`` is read by
  SQLAlchemy with its default driver (psycopg 3 for SQLAlchemy 2.1), which the ``postgres`` extra
  installs, so the same URL works in ``optuna.load_study`` and ``optuna-dashboard``.
* ``journal:///path/to/study.log`` (or a path ending in ``.log``) → JournalStorage over a file;
  ``redis://host:port/db`` → JournalStorage over Redis.
* ``grpc://host:port`` → Optuna's :class:`~optuna.storages.GrpcStorageProxy`, a client of
  ``tunelab storage-server`` (Optuna's gRPC proxy in front of PostgreSQL): hundreds of workers share
  the proxy's few database connections.

A journal file is appended without an fsync per value (:class:`JournalFile`): a trial's end is
synced at once, everything else at most a second later.

Journal, Redis and gRPC storages have no built-in heartbeat, so tunelab beats one itself
(:mod:`tunelab.tune.execution.heartbeat`) with the same retry rule (:func:`needs_own_heartbeat`).

Passwords never reach the console or a file: :func:`mask_url` is applied to every URL we show.
"""

from __future__ import annotations

import json
import logging
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

from tunelab.errors import UserError

if TYPE_CHECKING:
    import optuna

__all__ = [
    "GRPC_CONNECT_TIMEOUT",
    "SERVER_THREADS",
    "SYNC_SECONDS",
    "WORKER_CONNECTIONS",
    "JournalFile",
    "canonical_url",
    "default_storage",
    "grpc_address",
    "has_password",
    "is_multi_host",
    "is_rdb",
    "journal_path",
    "local_file",
    "make_storage",
    "mask_url",
    "needs_own_heartbeat",
    "study_exists",
]

log = logging.getLogger(__name__)
_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^@\s]*)(?P<at>@)")
GRPC_CONNECT_TIMEOUT = 10.0  # seconds to wait for a storage server before refusing its URL


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


def grpc_address(url: str) -> tuple[str, int] | None:
    """``(host, port)`` of a ``grpc://host:port`` URL, else None; a malformed one is refused."""
    if not url.startswith("grpc://"):
        return None
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or port is None or parts.path not in ("", "/"):
        raise UserError(f"storage {mask_url(url)}: expected grpc://HOST:PORT (the address of `tunelab storage-server`)")
    return host, port


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
    return journal_path(url) is None and not url.startswith(("redis://", "rediss://", "grpc://"))


def needs_own_heartbeat(url: str) -> bool:
    """Whether tunelab must beat the heartbeat itself (journal, Redis, gRPC: Optuna beats none)."""
    return not is_rdb(url)


def is_multi_host(url: str) -> bool:
    """Whether workers on several hosts can share the storage (a server, not a local file)."""
    return local_file(url) is None and not url.startswith("sqlite")


def _absolute_sqlite(url: str) -> str:
    """sqlite with a relative path → absolute, so study.json reopens from any directory."""
    path = local_file(url) if url.startswith("sqlite") else None
    if path is not None:
        return f"sqlite:///{path.resolve().as_posix()}"  # sqlite:////abs → /abs
    return url


def canonical_url(url: str) -> str:
    """The URL in the form stored in study.json (absolute sqlite/journal paths)."""
    jp = journal_path(url)
    if jp is not None:
        return f"journal://{Path(jp).resolve().as_posix()}"
    return _absolute_sqlite(url)


def _extra(url: str) -> str:
    if url.startswith(("redis://", "rediss://")):
        return "redis"
    return "grpc" if url.startswith("grpc://") else "postgres"


def _open_grpc(url: str, host: str, port: int, timeout: float) -> Any:
    from optuna.storages import GrpcStorageProxy

    storage = GrpcStorageProxy(host=host, port=port)
    try:
        storage.wait_server_ready(timeout=timeout)
    except ConnectionError:
        storage.close()
        raise UserError(
            f"storage {mask_url(url)}: no storage server answers there within {timeout:.0f}s; "
            "start one with `tunelab storage-server --storage URL --port PORT` or fix the address"
        ) from None
    return storage


#: How long a journal file's writes may wait for an fsync (a trial's end never waits).
SYNC_SECONDS = 1.0


class JournalFile(JournalFileBackend):
    """Optuna's journal file, fsynced when a trial ends and otherwise at most every ``sync_seconds``.

    Optuna's backend fsyncs every value (a pack of 100 trials writes ~4,000 per study, 0.3-2.5 ms
    each on a shared disk).  An fsync guards only against the machine going down: what a killed
    process has written is in the file, synced or not.  So each write here is the same locked
    append in the same format, and the fsync comes with the write that finishes a trial (the
    log holding ``datetime_complete``: a tell, a failed or reaped trial; everything written before
    it is synced with it), or with the first write ``sync_seconds`` after the last sync.  A machine
    crash can lose the last second of a running trial's values, never a finished trial.

    Every write still goes to the file at once, under the lock: other processes see it as before.
    Optuna's storage reads each write back right after appending it (``create_new_trial`` returns
    the id it reads), so writes cannot be held back and appended in batches: a held write would
    be missing from that read, or, served from memory, ordered differently than other processes
    read the file.
    """

    def __init__(self, file_path: str, sync_seconds: float = SYNC_SECONDS) -> None:
        self.lock = JournalFileSymlinkLock(file_path)  # the lock Optuna's backend takes by default
        super().__init__(file_path, lock_obj=self.lock)
        self.path = file_path
        self.sync_seconds = sync_seconds
        self.synced = time.monotonic()

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        if now - self.synced >= self.sync_seconds or any("datetime_complete" in entry for entry in logs):
            super().append_logs(logs)  # lock, append, fsync
            self.synced = now
            return
        text = "".join(json.dumps(entry, separators=(",", ":")) + "\n" for entry in logs)
        self.lock.acquire()
        try:
            with open(self.path, "ab") as fh:
                fh.write(text.encode("utf-8"))
        finally:
            self.lock.release()


def _write_ahead(engine: Any) -> None:
    """SQLite in write-ahead-log mode with ``synchronous=NORMAL``: a commit appends to the log and
    returns without waiting for the disk (a study commits each report and attribute of each trial:
    6.2 ms a write in SQLite's default rollback mode on a 2-core machine, 2.7 ms here, the rest
    being SQLAlchemy's and Optuna's queries; ``benchmarks/writes.py``), and readers no longer
    block the writer (several workers on one machine).  A committed trial survives a crash or
    kill of any process; only an OS crash or power loss may roll back the last commits (SQLite's
    own guarantee for this mode).  The mode is kept in the file: every later connection uses it."""
    import sqlite3

    from sqlalchemy import event

    def pragmas(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")  # in memory: stays "memory"
            cursor.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.DatabaseError as exc:  # a read-only file or folder: read it in the mode it has
            log.debug("SQLite write-ahead log not enabled: %s", exc)
        finally:
            cursor.close()

    event.listen(engine, "connect", pragmas)
    engine.dispose()  # connections opened before the listener are closed; new ones get the mode


def _check_schema(storage: Any, shown: str) -> None:
    """Optuna's table-schema check, with one connection at a time.

    Optuna's own check holds a session while it opens a second connection, so N workers opening
    the study together needed 2N connections: 64 workers went past PostgreSQL's default
    max_connections of 100 and 20 of them could not start (benchmarks/scale.py).
    """
    manager = storage._version_manager
    current, head = manager.get_current_version(), manager.get_head_version()
    if current != head:
        storage.engine.dispose()
        fix = (
            f"optuna storage upgrade --storage {shown}"
            if current in manager.get_all_versions()
            else "pip install -U optuna"
        )
        raise UserError(f"storage {shown}: its tables have schema {current}, this Optuna reads {head}; run `{fix}`")


_STORAGES: dict[tuple[str, int, int, int, int], Any] = {}
#: database connections a worker process keeps open: its storage calls run one at a time, so one is
#: enough; a thread that overlaps (Optuna's heartbeat) gets another, closed when it is returned.
#: SQLAlchemy's default pool kept every overlap's connection, two per worker: 64 workers then
#: held 128 connections, past PostgreSQL's default max_connections of 100 (benchmarks/scale.py).
WORKER_CONNECTIONS = 1
SERVER_THREADS = 10  # the storage server's request threads, each with its own connection


def _created_together(open_rdb: Callable[[], Any], tries: int = 5) -> Any:
    """``open_rdb()``, tried again when another process was creating the same new database: both
    find no tables, and the slower one fails on a table or on Optuna's ``alembic_version`` row that
    the other has just written (two studies started at once in one runs/ folder).  The next try
    finds the schema complete.  Other errors (a bad URL, a server down) are raised at once."""
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    for attempt in range(1, tries):
        try:
            return open_rdb()
        except (IntegrityError, OperationalError, ProgrammingError) as exc:
            if not (isinstance(exc, IntegrityError) or "already exists" in str(exc)):
                raise
            time.sleep(0.1 * attempt)
    return open_rdb()  # the last try: its error is raised


def _pool(connections: int) -> dict[str, Any]:
    """Engine options for a database server: ``connections`` kept, up to 10 more while busy."""
    return {"pool_pre_ping": True, "pool_size": connections, "max_overflow": 10}


def make_storage(
    url: str,
    *,
    heartbeat_interval: int = 10,
    grace_period: int = 60,
    max_retry: int = 2,
    connections: int = WORKER_CONNECTIONS,
) -> optuna.storages.BaseStorage:
    """Open (or create) the storage at ``url``; one instance per process and URL.

    ``connections``: how many database connections a PostgreSQL/MySQL storage keeps open (more are
    opened while threads overlap and closed after).  A bad URL, a missing driver or an unreachable
    server raises a one-line :class:`UserError`.
    """
    # keyed by the absolute path: a relative sqlite/journal URL means the directory of this call
    key = (canonical_url(url), heartbeat_interval, grace_period, max_retry, connections)
    if key in _STORAGES:
        return _STORAGES[key]
    import optuna
    from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback

    shown = mask_url(url)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            jp = journal_path(url)
            address = grpc_address(url)
            if jp is not None:
                Path(jp).parent.mkdir(parents=True, exist_ok=True)
                storage: Any = JournalStorage(JournalFile(jp))
            elif url.startswith(("redis://", "rediss://")):
                from optuna.storages.journal import JournalRedisBackend

                storage = JournalStorage(JournalRedisBackend(url))
            elif address is not None:
                storage = _open_grpc(url, *address, GRPC_CONNECT_TIMEOUT)
            else:
                url_abs = _absolute_sqlite(url)
                engine_kwargs: dict[str, Any] = {}
                if url_abs.startswith("sqlite"):
                    if (path := local_file(url_abs)) is not None:
                        path.parent.mkdir(parents=True, exist_ok=True)
                    engine_kwargs = {"connect_args": {"timeout": 60}}  # several workers share one file
                else:
                    engine_kwargs = _pool(connections)
                storage = _created_together(
                    lambda: RDBStorage(
                        url_abs,
                        engine_kwargs=engine_kwargs,
                        heartbeat_interval=heartbeat_interval,
                        grace_period=grace_period,
                        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=max_retry),
                        skip_compatibility_check=True,  # checked next, one connection at a time
                    )
                )
                _check_schema(storage, shown)
                if url_abs.startswith("sqlite"):
                    _write_ahead(storage.engine)
    except UserError:
        raise
    except ImportError as exc:
        raise UserError(
            f"storage {shown}: a driver is missing ({exc}); install it: pip install 'tunelab[{_extra(url)}]'"
        ) from None
    except Exception as exc:  # sqlalchemy/redis errors: bad URL, unreachable server, bad password
        first = mask_url(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)[:200]
        raise UserError(f"storage {shown}: cannot open it ({first}); check the URL, server and credentials") from None
    _STORAGES[key] = storage
    return storage


def study_exists(storage: optuna.storages.BaseStorage, name: str) -> bool:
    """Whether ``storage`` holds a study called ``name``."""
    import optuna

    try:
        storage.get_study_id_from_name(name)
    except KeyError:
        return False
    except optuna.exceptions.OptunaError:
        return False
    return True


def serve(url: str, *, host: str = "127.0.0.1", port: int = 13000, on_ready: Any = None) -> None:
    """Serve the storage at ``url`` to ``grpc://host:port`` clients (Optuna's gRPC proxy); blocks.

    The proxy holds the database connections for every worker behind it, and caches what it reads.
    """
    if grpc_address(url) is not None:
        raise UserError(f"--storage {mask_url(url)}: a storage server serves a database, not another server")
    if local_file(url) is not None and journal_path(url) is None and url.startswith("sqlite"):
        log.warning("serving SQLite: fine on one machine, but use PostgreSQL for many hosts")
    storage = make_storage(url, connections=SERVER_THREADS)
    try:
        import grpc  # noqa: F401  (Optuna imports it inside; fail here with the extra's name)
        from optuna.storages import get_storage, run_grpc_proxy_server
    except ImportError as exc:
        raise UserError(
            f"storage server: a package is missing ({exc}); install it: pip install 'tunelab[grpc]'"
        ) from None
    import socket

    with socket.socket() as probe:  # a taken port: say so now (gRPC would only log it)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UserError(
                f"--host {host} --port {port}: cannot listen there ({exc.strerror}); pick a free port"
            ) from None
    if on_ready is not None:
        on_ready(f"grpc://{host}:{port}")
    from concurrent.futures import ThreadPoolExecutor

    threads = ThreadPoolExecutor(max_workers=SERVER_THREADS)  # as many as the connections it keeps
    run_grpc_proxy_server(get_storage(storage), host=host, port=port, thread_pool=threads)
