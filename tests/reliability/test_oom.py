"""Out of memory inside a trial (simulated on CPU: a plugin model raises torch.cuda.OutOfMemoryError
while holding 64 MB): only that trial fails, the memory it held is freed, the study goes on."""

from __future__ import annotations

import gc
from pathlib import Path

from tests.reliability.common import FAULTS, TINY_BASE, check_artifacts, study_file
from tests.reliability.conftest import FIGURES
from tests.reliability.test_memory import MB, Sampler
from tunelab.plugins import load_plugin
from tunelab.tune import TuneOptions, load_study_config, tune


def test_an_oom_fails_only_its_trial_and_frees_memory(tmp_path: Path) -> None:
    faults = load_plugin(FAULTS)
    base = {**TINY_BASE, "model": {**TINY_BASE["model"], "name": "oom_gru"}}
    # hidden_dim 13 runs out of memory; the queue puts it first, third and fifth
    enqueue = [{"model.hidden_dim": h} for h in (13, 8, 13, 4, 13)]
    space = {"model.hidden_dim": [4, 8, 13], "train.lr": {"low": 1e-3, "high": 3e-2, "log": True}}
    cfg = load_study_config(study_file(tmp_path / "s.yaml", base=base, space=space, budget={"n_trials": 6}))
    rep = Sampler(warmup=1)
    result = tune(
        cfg,
        TuneOptions(save_dir=tmp_path, study_name="oom", report=False, enqueue=enqueue, plugins=(FAULTS,)),
        reporter=rep,
    )
    import optuna

    trials = optuna.load_study(study_name="oom", storage=f"sqlite:///{tmp_path / 'tunelab.db'}").trials
    states = [(t.params["model.hidden_dim"], t.state.name, t.user_attrs.get("reason")) for t in trials]
    for h, state, reason in states:
        if h == 13:
            assert (state, reason) == ("FAIL", "out of memory"), states
        else:
            assert state == "COMPLETE", states
    assert len(trials) == 6 and result.best_number is not None
    oom = [t for t in trials if t.state.name == "FAIL"]
    assert len(oom) >= 3 and all("traceback" not in t.user_attrs for t in oom)
    # every 64 MB block a failing forward held is unreachable once its trial has failed
    gc.collect()
    assert faults.HOGS and all(ref() is None for ref in faults.HOGS), "an OOM trial's memory is still referenced"
    rss = [x["rss"] / MB for x in rep.samples]
    assert rss[-1] - rss[1] < 32, rss  # after the first complete trial: two more OOMs of 64 MB each left nothing
    check_artifacts(result.study_dir)
    FIGURES["oom_trials"] += len(oom)
