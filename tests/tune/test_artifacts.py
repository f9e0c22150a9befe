"""Trial files in an artifact store (`--artifacts`): every trial uploads and links them, and a
study directory built elsewhere (`tunelab pull`, the refresh, `evaluate`) reads them from there
when the host that trained them is gone.  Bad store URLs are refused before anything exists."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import optuna
import pytest

from tests.reliability.common import TINY_BASE, invoke_main, study_file
from tunelab.errors import UserError
from tunelab.results.artifacts import CHECKPOINT, check_url, linked_files
from tunelab.tune import TuneOptions, study_from_mapping, tune

RUN_FILES = {CHECKPOINT, "config.json", "metrics.jsonl", "summary.json"}


def _tuned(tmp_path: Path, store: Path, name: str) -> tuple[str, optuna.Study]:
    """A two-trial study of tiny synthetic gestures run by "host A" (tmp/a), its files in ``store``."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    cfg = study_from_mapping(
        {"name": "t", "base": TINY_BASE, "space": {"train.lr": {"low": 1e-3, "high": 3e-2, "log": True}}}
        | {"sampler": "random", "budget": {"n_trials": 2}, "storage": url}
    )
    tune(cfg, TuneOptions(save_dir=tmp_path / "a", study_name=name, report=False, artifacts=str(store)))
    return url, optuna.load_study(study_name=name, storage=url)


def test_every_trial_links_its_files_and_another_host_builds_the_study(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    url, study = _tuned(tmp_path, store, "art")
    assert study.user_attrs["artifacts"] == str(store.resolve())
    for t in study.trials:
        assert set(linked_files(t)) == RUN_FILES  # linked from the trial itself
        for name, artifact_id in linked_files(t).items():  # the same bytes as the trial's own files
            local = tmp_path / "a" / "art" / t.user_attrs["run_dir"] / name
            assert (store / "art" / artifact_id).read_bytes() == local.read_bytes()
    shutil.rmtree(tmp_path / "a")  # host A is gone: only the storage and the store are left

    out = invoke_main(["pull", "--storage", url, "--study-name", "art", "--save-dir", "b"], cwd=tmp_path)
    assert out.code == 0, out.output
    pulled = tmp_path / "b" / "art"
    for t in study.trials:
        assert {p.name for p in (pulled / t.user_attrs["run_dir"]).iterdir()} == RUN_FILES - {CHECKPOINT}
    best = study.best_trial
    assert (pulled / CHECKPOINT).read_bytes() == (store / "art" / linked_files(best)[CHECKPOINT]).read_bytes()
    rows = (pulled / "trials.csv").read_text().splitlines()
    assert len(rows) == 1 + len(study.trials)
    assert (pulled / "study_results.json").is_file() and (pulled / "report.html").is_file()
    assert (pulled / "plots" / "loss_curves.png").is_file()  # drawn from the pulled metrics.jsonl

    (pulled / CHECKPOINT).unlink()  # evaluate fetches the best checkpoint again from the store
    out = invoke_main(["evaluate", str(pulled), "--json"], cwd=tmp_path)
    assert out.code == 0, out.output
    assert '"test_acc"' in out.stdout and (pulled / CHECKPOINT).is_file()


@pytest.mark.parametrize(
    ("artifacts", "said"),
    [
        ("missing-dir", "no such directory"),
        ("a-file", "is a file"),
        ("gs://bucket", "'gs' is not a store"),
        ("s3://", "expected s3://BUCKET"),
        ("s3://bucket", "pip install 'tunelab[s3]'"),
    ],
)
def test_a_bad_artifact_store_is_refused_before_anything_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, artifacts: str, said: str
) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # boto3 missing: `import boto3` raises ImportError
    (tmp_path / "a-file").write_text("x")
    cfg = study_file(tmp_path / "study.yaml")
    args = ["tune", "-c", str(cfg), "--storage", "sqlite:///db.sqlite", "--save-dir", "runs"]
    out = invoke_main([*args, "--artifacts", artifacts], cwd=tmp_path)
    assert out.code == 2 and f"--artifacts {artifacts}: " in out.stderr and said in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.output
    assert not (tmp_path / "db.sqlite").exists() and not (tmp_path / "runs").exists()


def test_analyze_fetches_curves_and_pull_refuses_a_missing_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    url, _ = _tuned(tmp_path, store, "gone")
    logs = sorted((tmp_path / "a" / "gone" / "trials").glob("*/metrics.jsonl"))
    kept = [p.read_bytes() for p in logs]
    for p in logs:  # as if the trials had run on another host
        p.unlink()
    out = invoke_main(["analyze", str(tmp_path / "a" / "gone")], cwd=tmp_path)
    assert out.code == 0, out.output
    assert [p.read_bytes() for p in logs] == kept  # fetched from the store for the loss curves
    assert (tmp_path / "a" / "gone" / "plots" / "loss_curves.png").is_file()

    shutil.rmtree(store)  # the study's store is not reachable from this "host"
    out = invoke_main(["pull", "--storage", url, "--study-name", "gone", "--save-dir", "b"], cwd=tmp_path)
    assert out.code == 2 and "pass --artifacts with this host's path" in out.stderr
    assert not (tmp_path / "b").exists()
    out = invoke_main(["pull", "--storage", "sqlite:///nope.db", "--study-name", "x", "--save-dir", "b"], cwd=tmp_path)
    assert out.code == 2 and "not found" in out.stderr
    assert not (tmp_path / "nope.db").exists() and not (tmp_path / "b").exists()


def test_store_urls_are_stored_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "shared").mkdir()
    monkeypatch.chdir(tmp_path)
    assert check_url("shared") == str((tmp_path / "shared").resolve())
    assert check_url(f"file://{tmp_path / 'shared'}") == str((tmp_path / "shared").resolve())
    with pytest.raises(UserError, match="no such directory"):
        check_url("file:///no/such/dir")
