"""The shipped experiment sets validate; seed 004's set runs end to end (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest

import tunelab  # noqa: F401
from tunelab.experiments import load_experiment_set, run_experiment_set

SETS = sorted((Path(__file__).parents[2] / "examples" / "experiments").glob("*.yaml"))


@pytest.mark.parametrize("path", SETS, ids=[p.stem for p in SETS])
def test_example_sets_validate(path: Path) -> None:
    spec, jobs = load_experiment_set(path)
    assert spec.baseline_name in spec.experiments
    assert {j.experiment for j in jobs} == set(spec.experiments)
    assert all(j.config.device == "cpu" for j in jobs)  # the examples' quick settings run anywhere


def test_seed004_covers_the_seeds_experiments() -> None:
    spec, jobs = load_experiment_set(SETS[[p.stem for p in SETS].index("seed004")])
    models = {j.config.model.name for j in jobs}
    assert models == {"gru", "lstm", "conv_gru"}
    cfgs = [j.config.model for j in jobs]
    assert any(m.bidirectional for m in cfgs) and any(m.layer_norm for m in cfgs)  # type: ignore[attr-defined]
    assert {m.hidden_dim for m in cfgs} >= {32, 64, 128} and {m.dropout for m in cfgs} >= {0.0, 0.2, 0.3}  # type: ignore[attr-defined]
    assert len(jobs) == 2 * len(spec.experiments)


@pytest.mark.slow
def test_seed004_runs_end_to_end(tmp_path) -> None:
    path = SETS[[p.stem for p in SETS].index("seed004")]
    result = run_experiment_set(path, save_dir=tmp_path)
    assert result.ran == 22 and all(r.n == 2 for r in result.comparison.rows)
    assert (result.study_dir / "plots" / "learning_curves.png").is_file()
