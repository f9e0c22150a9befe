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
        assert _held(tag) == kept
        storage.get_all_studies()  # the next call reuses a kept connection
        assert _held(tag) == kept
    finally:
        engine.dispose()
