"""Finding a study: study.json, storage URLs, masking, plain errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import optuna
import pytest
from conftest import COMPLETE, add_complete, new_study, write_study_dir

from tunelab.analysis.source import load_study, mask_url, planned_trials, resolve_study, study_info
from tunelab.errors import UserError


def test_mask_url_hides_password_only() -> None:
    assert mask_url("postgresql://ana:s3cr%40t@db.example:5432/tune") == "postgresql://ana:***@db.example:5432/tune"
    assert mask_url("sqlite:///runs/tunelab.db") == "sqlite:///runs/tunelab.db"
    assert mask_url("mysql://bob@host/db") == "mysql://bob@host/db"


def test_resolve_from_study_json(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    new_study(db, "s1", ["maximize"], ["val_f1"])
    sdir = write_study_dir(tmp_path, f"sqlite:///{db}", "s1")
    ref = resolve_study(sdir)
    assert (ref.study_name, ref.study_dir) == ("s1", sdir)
    assert load_study(ref).study_name == "s1"


def test_relative_sqlite_found_from_another_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "runs").mkdir()
    new_study(tmp_path / "runs" / "tunelab.db", "rel", ["maximize"], ["val_f1"])
    sdir = write_study_dir(tmp_path, "sqlite:///runs/tunelab.db", "rel")  # relative to tmp_path
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    ref = resolve_study(sdir)
    assert Path(ref.storage.removeprefix("sqlite:///")).resolve() == (tmp_path / "runs" / "tunelab.db").resolve()


def test_missing_database_is_refused_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    with pytest.raises(UserError, match="not found"):
        resolve_study(storage=f"sqlite:///{missing}", study_name="x")
    assert not missing.exists()


def test_unknown_study_names_the_ones_there(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    new_study(db, "real", ["maximize"], ["val_f1"])
    with pytest.raises(UserError, match=r"--study ghost: no such study .*real"):
        load_study(resolve_study(storage=f"sqlite:///{db}", study_name="ghost"))


def test_folder_without_study_json(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no study.json"):
        resolve_study(tmp_path)
    with pytest.raises(UserError, match="study directory not found"):
        resolve_study(tmp_path / "absent")
    with pytest.raises(UserError, match="missing --study NAME"):
        resolve_study(storage="sqlite:///x.db")


def test_unreachable_server_error_never_shows_the_password() -> None:
    url = "postgresql://ana:topsecret@127.0.0.1:9/tune"
    with pytest.raises(UserError) as err:
        load_study(resolve_study(storage=url, study_name="x"))
    assert "topsecret" not in str(err.value) and "ana:***@" in str(err.value)


def test_study_info_and_planned_trials(tmp_path: Path) -> None:
    study = new_study(tmp_path / "t.db", "s", ["maximize", "minimize"], ["val_f1", "n_params"], n_trials=12)
    info = study_info(study)
    assert (info.objectives, info.directions, info.phase, info.n_trials) == (
        ["val_f1", "n_params"],
        ["maximize", "minimize"],
        "coarse",
        12,
    )
    assert planned_trials({"budget": {"n_trials": 50, "timeout": None}}) == 50
    assert planned_trials({"budget": {"n_trials": None}}) is None
    assert planned_trials({"phases": [{"name": "fine", "n_trials": 7}], "n_trials": 3}, "fine") == 7
    bare = optuna.create_study(direction="minimize")
    add_complete(bare, COMPLETE[0])
    assert study_info(bare).objectives == ["value"] and study_info(bare).phase == "study"


def test_study_json_is_read_not_written(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    new_study(db, "s", ["maximize"], ["val_f1"])
    sdir = write_study_dir(tmp_path, f"sqlite:///{db}", "s")
    before = (sdir / "study.json").read_text(), os.path.getmtime(sdir / "study.json")
    resolve_study(sdir)
    assert ((sdir / "study.json").read_text(), os.path.getmtime(sdir / "study.json")) == before
    assert json.loads(before[0])["study_name"] == "s"


def test_masked_storage_in_study_json_asks_for_the_url(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    new_study(db, "s", ["maximize"], ["val_f1"])
    sdir = tmp_path / "runs" / "s"
    sdir.mkdir(parents=True)
    masked = {"storage": "postgresql://u:***@db/x", "study_name": "s", "storage_masked": True}
    (sdir / "study.json").write_text(json.dumps(masked))
    with pytest.raises(UserError, match="pass it again with --storage"):
        resolve_study(sdir)
    ref = resolve_study(sdir, storage=f"sqlite:///{db}")  # the name still comes from study.json
    assert ref.study_name == "s" and load_study(ref).study_name == "s"
