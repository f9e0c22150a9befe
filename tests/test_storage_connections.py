"""A worker's PostgreSQL storage keeps one database connection: a thread that overlaps the main
one (Optuna's heartbeat) gets a second, closed when it is returned, so N workers hold about N
connections, not 2N (benchmarks/scale.py found 128 held by 64 workers, past max_connections 100)."""

from __future__ import annotations

import os
import uuid

import pytest

from tunelab.storage import make_storage

POSTGRES = os.environ.get("TUNELAB_TEST_POSTGRES_URL")
pytestmark = [pytest.mark.postgres, pytest.mark.skipif(not POSTGRES, reason="set TUNELAB_TEST_POSTGRES_URL")]


def _settled(tag: str, expected: int, seconds: float = 3.0) -> int:
    """Connections held under ``tag`` once the server has caught up: a closed connection's backend
    leaves pg_stat_activity a moment after the client let go (a loaded CI machine saw 2 for 1)."""
    import time

    end = time.monotonic() + seconds
    while (held := _held(tag)) != expected and time.monotonic() < end:
        time.sleep(0.05)
    return held


def _held(tag: str) -> int:
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    engine = sa.create_engine(str(POSTGRES), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            query = sa.text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :tag")
            return int(conn.execute(query, {"tag": tag}).scalar() or 0)
    finally:
        engine.dispose()


@pytest.mark.parametrize("connections, kept", [(None, 1), (3, 3)])
def test_overlapping_threads_leave_the_kept_connections_open(connections: int | None, kept: int) -> None:
    tag = f"tunelab-pool-{uuid.uuid4().hex[:8]}"
    url = f"{POSTGRES}{'&' if '?' in str(POSTGRES) else '?'}application_name={tag}"
    storage = make_storage(url) if connections is None else make_storage(url, connections=connections)
    engine = storage.engine  # type: ignore[attr-defined]
    try:
        held = [engine.connect() for _ in range(4)]  # four calls at once (threads overlapping)
        assert _held(tag) == 4
        for conn in held:
            conn.close()
        assert _settled(tag, kept) == kept
        storage.get_all_studies()  # the next call reuses a kept connection
        assert _settled(tag, kept) == kept
    finally:
        engine.dispose()


def test_opening_a_storage_uses_one_connection_at_a_time() -> None:
    """Workers that start together must not need two connections each while they open the study."""
    import sqlalchemy as sa

    busy = [0, 0]  # checked out now, most at once (over every pool: only this open runs meanwhile)

    def out(*_: object) -> None:
        busy[0] += 1
        busy[1] = max(busy)

    def back(*_: object) -> None:
        busy[0] -= 1

    sa.event.listen(sa.pool.Pool, "checkout", out)
    sa.event.listen(sa.pool.Pool, "checkin", back)
    try:
        tag = f"tunelab-open-{uuid.uuid4().hex[:8]}"
        storage = make_storage(f"{POSTGRES}{'&' if '?' in str(POSTGRES) else '?'}application_name={tag}")
    finally:
        sa.event.remove(sa.pool.Pool, "checkout", out)
        sa.event.remove(sa.pool.Pool, "checkin", back)
    try:
        assert busy == [0, 1] and _settled(tag, 1) == 1
    finally:
        storage.engine.dispose()  # type: ignore[attr-defined]


def test_tables_of_another_optuna_version_are_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from optuna.storages._rdb.storage import _VersionManager

    from tunelab.errors import UserError

    monkeypatch.setattr(_VersionManager, "get_head_version", lambda self: "v99.0.0.a")
    tag = f"tunelab-schema-{uuid.uuid4().hex[:8]}"
    with pytest.raises(
        UserError, match=r"schema v\S+, this Optuna reads v99.0.0.a; run `optuna storage upgrade"
    ) as err:
        make_storage(f"{POSTGRES}{'&' if '?' in str(POSTGRES) else '?'}application_name={tag}")
    assert "\n" not in str(err.value)
