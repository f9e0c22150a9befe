"""tunelab.storage: URL kinds, masking, and refusals of URLs that cannot work."""

from __future__ import annotations

import os
import socket
from pathlib import Path

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
