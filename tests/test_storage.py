"""tunelab.storage: URL kinds, masking, and refusals of URLs that cannot work."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest

from tunelab.errors import UserError
from tunelab.storage import grpc_address, is_multi_host, is_rdb, make_storage, mask_url, needs_own_heartbeat

POSTGRES = os.environ.get("TUNELAB_TEST_POSTGRES_URL")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_url_kinds() -> None:
    assert grpc_address("grpc://node1:13000") == ("node1", 13000)
    assert grpc_address("postgresql://u@h/db") is None
    assert needs_own_heartbeat("grpc://h:1") and needs_own_heartbeat("redis://h") and needs_own_heartbeat("x.log")
    assert is_rdb("postgresql://u@h/db") and not needs_own_heartbeat("sqlite:///a.db")
    assert is_multi_host("grpc://h:1") and is_multi_host("postgresql://h/db") and not is_multi_host("sqlite:///a.db")
    assert mask_url("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"


@pytest.mark.parametrize("url", ["grpc://nohost", "grpc://h:notaport", "grpc://h:1/db"])
def test_malformed_grpc_url_is_refused(url: str) -> None:
    with pytest.raises(UserError, match="expected grpc://HOST:PORT"):
        make_storage(url)


def test_unreachable_grpc_server_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tunelab.storage.GRPC_CONNECT_TIMEOUT", 0.5)
    with pytest.raises(UserError, match="no storage server answers") as err:
        make_storage(f"grpc://127.0.0.1:{free_port()}")
    assert "\n" not in str(err.value)


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES, reason="set TUNELAB_TEST_POSTGRES_URL")
def test_plain_postgresql_url_works_in_optuna_itself(tmp_path: Path) -> None:
    """The ``postgres`` extra installs the driver SQLAlchemy reads ``postgresql://`` with."""
    import optuna

    assert POSTGRES is not None and POSTGRES.startswith("postgresql://")
    optuna.get_all_study_summaries(POSTGRES)  # no "Failed to import DB access module"


@pytest.mark.slow
@pytest.mark.parametrize(
    "url",
    ["grpc://127.0.0.1:{port}", "grpc://no-port-here", "postgresql://postgres@127.0.0.1:{port}/x", "nosuch://x/y"],
)
def test_cli_refuses_a_bad_or_unreachable_storage_in_one_line(tmp_path: Path, url: str) -> None:
    from tests.reliability.common import run_cli, study_file

    url = url.format(port=free_port())
    cfg = study_file(tmp_path / "study.yaml")
    for args in (
        ["tune", "-c", str(cfg), "--storage", url, "--save-dir", "out"],
        ["worker", "--storage", url, "--study-name", "s", "--save-dir", "out"],
    ):
        out = run_cli(*args, cwd=tmp_path, timeout=120)
        assert out.returncode == 2, out.stderr
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "storage" in lines[0] and "Traceback" not in out.stderr, out.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]  # nothing created


def _journal_study(path: Path, sync_seconds: float) -> Any:
    import optuna

    from tunelab.storage import JournalFile

    storage = optuna.storages.JournalStorage(JournalFile(str(path), sync_seconds=sync_seconds))
    return optuna.create_study(study_name="j", storage=storage)


def _read_back(path: Path) -> list[Any]:
    """The trials as Optuna's own journal backend reads the file (a fresh reader)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    return optuna.load_study(study_name="j", storage=storage).get_trials(deepcopy=False)


@pytest.mark.parametrize(("sync_seconds", "synced"), [(3600.0, 1), (0.0, 8)])
def test_a_journal_file_is_synced_when_a_trial_ends_and_after_sync_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sync_seconds: float, synced: int
) -> None:
    """Optuna's file backend fsyncs every value; JournalFile syncs the write that finishes a trial
    (and all before it), and otherwise the first write ``sync_seconds`` after the last sync."""
    study = _journal_study(tmp_path / "s.log", sync_seconds)
    fsyncs: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: fsyncs.append(fd) or real(fd))
    trial = study.ask()  # 8 writes from here, the last one the tell
    trial.suggest_float("x", 0.0, 1.0)
    for step in range(1, 5):
        trial.report(step / 10, step)
    trial.set_user_attr("note", "kept")
    study.tell(trial, 0.5)
    assert len(fsyncs) == synced
    (t,) = _read_back(tmp_path / "s.log")
    assert t.state.name == "COMPLETE" and t.value == 0.5 and t.user_attrs == {"note": "kept"}
    assert t.intermediate_values == {1: 0.1, 2: 0.2, 3: 0.3, 4: 0.4} and "x" in t.params


_KILLED_AFTER_TELL = """
import os, signal, sys
import optuna
from tunelab.storage import make_storage
study = optuna.create_study(study_name="j", storage=make_storage(sys.argv[1]))
done = study.ask()
done.report(0.25, 1)
study.tell(done, 1.0)
running = study.ask()
running.report(0.5, 1)  # not synced: written, then the process dies
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_process_loses_no_journal_write(tmp_path: Path) -> None:
    """What is written but not yet fsynced is in the file: a SIGKILL right after loses nothing."""
    import signal
    import subprocess
    import sys

    from tests.helpers import env

    log = tmp_path / "k.log"
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_AFTER_TELL, f"journal:///{log}"], env=env(), capture_output=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    done, running = _read_back(log)
    assert (done.state.name, done.value, done.intermediate_values) == ("COMPLETE", 1.0, {1: 0.25})
    assert (running.state.name, running.intermediate_values) == ("RUNNING", {1: 0.5})


def test_a_killed_process_loses_no_sqlite_commit(tmp_path: Path) -> None:
    """SQLite runs in write-ahead-log mode without an fsync per commit (synchronous=NORMAL): a
    SIGKILL right after a commit loses nothing, and the next opening reads the log back."""
    import signal
    import sqlite3
    import subprocess
    import sys

    import optuna

    from tests.helpers import env

    db = tmp_path / "k.db"
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_AFTER_TELL, f"sqlite:///{db}"], env=env(), capture_output=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert (tmp_path / "k.db-wal").is_file()  # the commits are in the log, not yet in the database file
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    storage = make_storage(f"sqlite:///{db}")
    with storage.engine.connect() as con:  # tunelab's connections skip the fsync per commit
        assert con.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    done, running = optuna.load_study(study_name="j", storage=storage).get_trials(deepcopy=False)
    assert (done.state.name, done.value, done.intermediate_values) == ("COMPLETE", 1.0, {1: 0.25})
    assert (running.state.name, running.intermediate_values) == ("RUNNING", {1: 0.5})


def test_a_read_only_sqlite_file_is_read_in_its_own_mode(tmp_path: Path) -> None:
    """The write-ahead log cannot be switched on in a file opened read-only: it is read as it is."""
    import sqlite3

    import sqlalchemy

    from tunelab.storage import _write_ahead

    con = sqlite3.connect(tmp_path / "ro.db")
    con.execute("CREATE TABLE t (x)")
    con.execute("INSERT INTO t VALUES (1)")
    con.commit()
    con.close()
    engine = sqlalchemy.create_engine(f"sqlite:///file:{tmp_path / 'ro.db'}?mode=ro&uri=true")
    _write_ahead(engine)
    with engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "delete"
        assert c.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1


_OPEN_AT_ONCE = """
import sys, time
start = float(sys.argv[2])
import optuna.storages, sqlalchemy.exc  # imported before the start: only the opening is raced
from tunelab.storage import make_storage
time.sleep(max(0.0, start - time.time()))  # every process opens the new file at the same moment
make_storage(sys.argv[1]).get_all_studies()
print("opened")
"""


def test_processes_creating_one_new_sqlite_storage_at_once_all_open_it(tmp_path: Path) -> None:
    """Two `tunelab tune` started together in one runs/ folder both create runs/tunelab.db: the loser
    of the race failed on Optuna's alembic_version row (benchmarks/tsc.py --jobs 2 lost a study)."""
    import subprocess
    import sys
    import time

    from tests.helpers import env

    url, start = f"sqlite:///{tmp_path / 'new.db'}", time.time() + 4.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN_AT_ONCE, url, str(start)],
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(8)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    failed = [err.decode()[-500:] for p, (_, err) in zip(procs, outs, strict=True) if p.returncode != 0]
    assert not failed, failed


def test_only_the_creation_race_is_tried_again() -> None:
    from sqlalchemy.exc import IntegrityError, OperationalError

    from tunelab.storage import _created_together

    calls: list[int] = []

    def lost_the_race_once() -> str:
        calls.append(1)
        if len(calls) == 1:  # what the slower of two creators of one new database sees
            raise IntegrityError("INSERT INTO alembic_version", {}, Exception("UNIQUE constraint failed"))
        return "storage"

    assert _created_together(lost_the_race_once) == "storage" and len(calls) == 2

    def server_down() -> str:
        calls.append(1)
        raise OperationalError("connect", {}, Exception("connection refused"))

    calls.clear()
    with pytest.raises(OperationalError):
        _created_together(server_down)
    assert len(calls) == 1  # a real error is not waited on
