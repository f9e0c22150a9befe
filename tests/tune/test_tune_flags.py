"""`tunelab tune`'s flags as the seed teams use them (issue 19): tracking flags, multi-objective
lines and pruning, the --auto-tune-all comparison, phased --best-params, grid/--epochs/--resume."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.tune.test_cli import TINY
from tunelab.cli import app, main


def _run(tmp_path: Path, *args: str) -> Any:
    out = CliRunner().invoke(app, ["tune", *args, "--save-dir", str(tmp_path)])
    return out


def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["tunelab", *args])
    with pytest.raises(SystemExit) as info:
        main()
    code = info.value.code
    return (code if isinstance(code, int) else 1), " ".join(capsys.readouterr().err.split())


# --------------------------------------------------------------------------- W&B (item 6)


def test_wandb_project_alone_turns_wandb_on_with_entity_group_and_a_sync_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tunelab.api  # the CLI calls the public API

    seen: dict[str, Any] = {}

    def fake_tune(cfg: Any, opts: Any, **kw: Any) -> None:
        seen["tracking"] = opts.tracking

    monkeypatch.setattr(tunelab.api, "tune", fake_tune)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    args = ["--model", "gru", "--wandb-project", "asl", "--wandb-entity", "team", "--wandb-group", "g1", *TINY]
    out = _run(tmp_path, *args)
    assert out.exit_code == 0, out.output
    wb = seen["tracking"].wandb
    assert (wb.enabled, wb.project, wb.entity, wb.group, wb.mode) == (True, "asl", "team", "g1", "offline")
    assert f"wandb sync {tmp_path / 'wandb'}/offline-run-*" in out.output


# --------------------------------------------------------------------------- multi-objective (item 11)


def test_multi_objective_lines_show_the_values(tmp_path: Path) -> None:
    args = ["--model", "gru", "--objectives", "val_f1,n_params", "--pruner", "none", "--trials", "2"]
    out = _run(tmp_path, *args, "--epochs", "1", *TINY, "--no-report", "--study-name", "mo")
    assert out.exit_code == 0, out.output
    assert "Trial 0 finished with values: [val_f1=" in out.output and ", n_params=" in out.output


def test_a_pruner_with_several_objectives_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["tune", "--objectives", "val_f1,n_params", "--pruner", "median", *TINY, "--save-dir", str(tmp_path)]
    code, err = _main(monkeypatch, capsys, *args)
    assert code == 2 and "Optuna does not prune multi-objective trials; use --pruner none" in err
    assert not (tmp_path / "tunelab.db").exists()  # nothing half-written


# --------------------------------------------------------------------------- --auto-tune-all (item 4)


def test_auto_tune_all_writes_the_comparison_and_prints_whole_names(tmp_path: Path) -> None:
    args = ["--auto-tune-all", "--model", "gru,bilstm_standard", "--trials", "1", "--epochs", "1", *TINY]
    out = _run(tmp_path, *args, "--no-report", "--study-name", "cmp")
    assert out.exit_code == 0, out.output
    groups = [p for p in tmp_path.iterdir() if p.is_dir() and p.name.startswith("cmp")]
    assert len(groups) == 1
    rows = list(csv.DictReader((groups[0] / "comparison.csv").open()))
    assert {r["family"] for r in rows} == {"gru", "bilstm_standard"} and all(r["value"] for r in rows)
    assert "bilstm_standard" in out.output and "…" not in out.output  # not cut at 80 columns in a pipe
    assert f"comparison: {groups[0] / 'comparison.csv'}" in out.output


# --------------------------------------------------------------------------- phases (item 5)

PHASED = {
    "space": {
        "train.lr": {"low": 1e-3, "high": 3e-2, "log": True},
        "model.hidden_dim": [4, 8],
        "model.dropout": {"low": 0.0, "high": 0.3},
    },
    "phases": {"coarse": ["train.lr"], "arch": ["model.hidden_dim"], "reg": ["model.dropout"], "full": "all"},
}


def test_a_glob_of_best_params_applies_in_phase_order_and_joins_their_group(tmp_path: Path) -> None:
    import optuna

    from tests.reliability.common import study_file

    group = tmp_path / "rel-20260101-000000"
    for phase, values in {
        "arch": {"train.lr": 0.002, "model.hidden_dim": 4},  # given first, but a later phase than coarse
        "coarse": {"train.lr": 0.001},
        "reg": {"train.lr": 0.02, "model.dropout": 0.1},  # the phase being tuned: skipped
    }.items():
        (group / phase).mkdir(parents=True)
        (group / phase / "best_params.json").write_text(json.dumps(values))
    files = [str(group / p / "best_params.json") for p in ("arch", "coarse", "reg")]
    cfg = study_file(tmp_path / "rel.yaml", **PHASED)
    out = _run(tmp_path, "-c", str(cfg), "--phase", "reg", "--trials", "1", "--no-report", "--best-params", *files)
    assert out.exit_code == 0, out.output
    study = optuna.load_study(study_name="rel-20260101-000000/reg", storage=f"sqlite:///{tmp_path / 'tunelab.db'}")
    assert study.user_attrs["fixed_params"] == {"train.lr": 0.002, "model.hidden_dim": 4}
    assert (group / "reg" / "trials.csv").is_file()  # the same folder as the files' phases


def test_a_phase_that_searches_everything_follows_no_other_and_joins_the_newest_group(
    tmp_path: Path, splits: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.tune.conftest import options, tiny_study
    from tunelab.tune import tune
    from tunelab.tune.space.phases import previous_phase

    cfg = tiny_study(**{**PHASED, "phases": {**PHASED["phases"], "full_with_model": ["all"]}})
    assert previous_phase(cfg, "arch") == "coarse"
    assert previous_phase(cfg, "full") is None and previous_phase(cfg, "full_with_model") is None
    one = tune(cfg, options(tmp_path, phase="coarse", best_params=None), data=splits)
    full = tune(cfg, options(tmp_path, phase="full"), data=splits)
    with caplog.at_level("WARNING"):
        alt = tune(cfg, options(tmp_path, phase="full_with_model"), data=splits)
    head = one.study_name.rpartition("/")[0]
    assert (full.study_name, alt.study_name) == (f"{head}/full", f"{head}/full_with_model")
    assert "previous phase" not in caplog.text


# --------------------------------------------------------------------------- grid and budget (item 7)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TINY_DENOISE = ["data.options.n=24", "data.options.min_len=32", "data.options.max_len=48", "model.depth=2"]


def test_seed002_without_grid_searches_its_first_grid_and_says_what_epochs_drops(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seed = str(EXAMPLES / "seed002_unet_grid.yaml")
    with caplog.at_level("WARNING"):
        out = _run(
            tmp_path,
            "-c",
            seed,
            "--trials",
            "1",
            "--epochs",
            "1",
            "--no-report",
            *TINY_DENOISE,
            "model.base_channels=4",
        )
    assert out.exit_code == 0, out.output
    assert "grid 'quick': 4 combinations" in out.output and "needs discrete values" not in out.output
    assert "sampler grid without --grid: searching the first grid, 'quick'" in caplog.text
    assert "train.max_epochs (grid values [30, 50]) set on the command line" in caplog.text
    assert "4 combinations instead of 8" in caplog.text


def test_resume_with_another_epoch_budget_is_refused(tmp_path: Path, splits: Any) -> None:
    from tests.tune.conftest import TINY_BASE, options, tiny_study
    from tunelab.errors import UserError
    from tunelab.tune import tune

    tune(tiny_study(budget={"n_trials": 1}), options(tmp_path, study_name="b"), data=splits)
    shorter = tiny_study(base={**TINY_BASE, "train": {**TINY_BASE["train"], "max_epochs": 1}})
    with pytest.raises(
        UserError, match=r"--resume: study b trains for train.max_epochs=2, this run for 1 \(--epochs\)"
    ):
        tune(shorter, options(tmp_path, study_name="b", resume=True), data=splits)
    again = tune(tiny_study(budget={"n_trials": 1}), options(tmp_path, study_name="b", resume=True), data=splits)
    assert sum(again.states.values()) == 2  # the same budget resumes
