"""The bad-input corpus: every case is refused with one line that names the problem and the fix,
exit code 2, no traceback, and no study or study directory half-created.

Most cases run ``tunelab.cli.main()`` in this process (what the console script runs; a subprocess
costs seconds on a loaded machine); :func:`test_end_to_end_in_a_subprocess` proves the same
through the real ``python -m tunelab`` for a few of them.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
import torch

from tests.reliability.common import TINY_BASE, Outcome, invoke_main, run_cli, study_file
from tests.reliability.conftest import FIGURES

PASSWORD = "s3cr3t-Pa55"


@dataclass
class Case:
    """``args`` run in a fresh directory after ``setup(dir)``; ``needles`` must all be in the message."""

    id: str
    args: list[str]
    needles: tuple[str, ...]
    setup: Callable[[Path], Any] | None = None
    check: Callable[[Path, Outcome], None] | None = None
    secret: str | None = None  # must appear nowhere: output, files
    files: list[str] = field(default_factory=list)


def study(**kw: Any) -> Callable[[Path], Any]:
    return lambda d: study_file(d / "s.yaml", **kw)


def data_study(name: str, write: Callable[[Path], Any]) -> Callable[[Path], Any]:
    """A study whose base reads the file ``name`` that ``write(path)`` creates."""

    def setup(d: Path) -> None:
        write(d / name)
        study_file(d / "s.yaml", base={**TINY_BASE, "data": {"path": name}})

    return setup


def write_text(text: str) -> Callable[[Path], Any]:
    return lambda p: p.write_text(text)


RNG = np.random.default_rng(0)


def npz(**arrays: Any) -> Callable[[Path], Any]:
    return lambda p: np.savez(p, **arrays)


def ragged() -> np.ndarray:
    x = np.empty(3, dtype=object)
    x[:] = [RNG.normal(size=(5, 2)), RNG.normal(size=(4, 3)), RNG.normal(size=(6, 2))]
    return x


def with_value(value: float) -> np.ndarray:
    x = RNG.normal(size=(20, 5, 2))
    x[3, 2, 1] = value
    return x


def long_csv(label: bool = True, bad: float | None = None) -> Callable[[Path], Any]:
    def write(p: Path) -> None:
        rows = [
            {"id": i, "time": t, "f0": float(RNG.normal()), "label": "ab"[i % 2]} for i in range(12) for t in range(4)
        ]
        if bad is not None:
            rows[9]["f0"] = bad
        frame = pd.DataFrame(rows)
        (frame if label else frame.drop(columns="label")).to_csv(p, index=False)

    return write


class _Pwn:
    """Unpickling this creates the file PWNED: proof that a file was (or was not) unpickled."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> Any:
        return (open, (str(self.target), "w"))


def not_pwned(d: Path, _: Outcome) -> None:
    assert not (d / "PWNED").exists(), "the foreign checkpoint was unpickled"


TUNE = ["tune", "-c", "s.yaml", "--save-dir", "runs"]

CASES = [
    # --------------------------------------------------------------- config and study files
    Case(
        "yaml-malformed",
        TUNE,
        ("s.yaml", "line 3", "not valid YAML", "fix the syntax"),
        lambda d: (d / "s.yaml").write_text("name: x\nspace: [1, 2\n"),
    ),
    Case(
        "json-malformed",
        ["train", "-c", "c.json", "--save-dir", "runs"],
        ("c.json", "not valid YAML/JSON", "fix the syntax"),
        lambda d: (d / "c.json").write_text('{"train": {"lr": 1e-3,}}'),
    ),
    Case("study-unknown-key", TUNE, ("unknown key 'sampeler'", "did you mean 'sampler'"), study(sampeler="tpe")),
    Case(
        "override-unknown-key",
        ["tune", "train.lrr=1", "--save-dir", "runs"],
        ("unknown key 'train.lrr'", "did you mean 'lr'"),
    ),
    Case(
        "space-spec-unknown-key",
        TUNE,
        ("space.train.lr.hihg", "did you mean 'high'"),
        study(space={"train.lr": {"low": 1e-3, "hihg": 1e-2}}),
    ),
    Case(
        "space-unknown-config-key",
        TUNE,
        ("unknown config key 'train.lrx'", "did you mean 'train.lr'"),
        study(space={"train.lrx": {"low": 1e-3, "high": 1e-2}}),
    ),
    Case(
        "wrong-type-override",
        ["tune", "train.batch_size=abc", "--save-dir", "runs"],
        ("train.batch_size", "valid integer", "'abc'"),
    ),
    Case("wrong-type-study", TUNE, ("budget.n_trials", "valid integer"), study(budget={"n_trials": "many"})),
    Case(
        "low-above-high",
        TUNE,
        ("space.train.lr", "low=0.01 > high=0.001", "swap them"),
        study(space={"train.lr": {"low": 1e-2, "high": 1e-3}}),
    ),
    Case(
        "log-with-low-zero",
        TUNE,
        ("space.train.lr", "log=true needs low > 0"),
        study(space={"train.lr": {"low": 0, "high": 1e-3, "log": True}}),
    ),
    Case(
        "empty-choices-list",
        TUNE,
        ("space.model.hidden_dim", "choices is empty", "at least one value"),
        study(space={"model.hidden_dim": []}),
    ),
    Case(
        "empty-choices-mapping",
        TUNE,
        ("space.model.hidden_dim", "choices is empty"),
        study(space={"model.hidden_dim": {"choices": []}}),
    ),
    Case(
        "when-on-missing-param",
        TUNE,
        ("space.train.lr.when", "'model.nope'", "condition on a searched parameter"),
        study(space={"train.lr": {"low": 1e-3, "high": 1e-2, "when": {"model.nope": 3}}}),
    ),
    Case(
        "unknown-model-flag",
        ["tune", "--model", "grux", "--save-dir", "runs"],
        ("unknown model family 'grux'", "did you mean 'gru'"),
    ),
    Case(
        "unknown-model-override",
        ["train", "model.name=grux", "--save-dir", "runs"],
        ("unknown model 'grux'", "did you mean 'gru'"),
    ),
    Case(
        "unknown-dataset",
        ["tune", "--dataset", "japanese_vowel", "--save-dir", "runs"],
        ("unknown dataset 'japanese_vowel'", "did you mean 'japanese_vowels'"),
    ),
    Case(
        "unknown-dataset-in-study-file",
        TUNE,
        ("unknown dataset 'japanese_vowel'", "japanese_vowels"),
        study(base={**TINY_BASE, "data": {"name": "japanese_vowel"}}),
    ),
    Case(
        "space-choice-out-of-bounds",
        TUNE,
        ("s.yaml: space: model.dropout", "the choice 1.5 is never valid", "less than 1"),
        study(space={"model.dropout": [0.1, 1.5]}),
    ),
    Case(
        "study-file-to-train",
        ["train", "-c", "s.yaml", "--save-dir", "runs"],
        ("s.yaml: this is a study file, not a run config", "`tunelab tune -c s.yaml`"),
        study(),
    ),
    Case(
        "study-file-to-experiments",
        ["experiments", "s.yaml", "--save-dir", "runs"],
        ("s.yaml: this is a study file, not an experiment set", "`tunelab tune -c s.yaml`"),
        study(),
    ),
    Case(
        "experiment-set-to-tune",
        ["tune", "-c", "set.yaml", "--save-dir", "runs"],
        ("set.yaml: this is an experiment set, not a study file", "`tunelab experiments set.yaml`"),
        lambda d: (d / "set.yaml").write_text("name: e\nbase: {model: {name: gru}}\nexperiments: {a: {}}\n"),
    ),
    Case("unknown-option", [*TUNE, "--bogus"], ("No such option: --bogus", "see 'tunelab tune --help'"), study()),
    Case("option-out-of-range", ["tune", "--n-trials", "0"], ("'--n-trials'", "greater than or equal to 1")),
    Case("missing-argument", ["compare"], ("Missing argument 'sources'", "see 'tunelab compare --help'")),
    Case("unknown-sampler", [*TUNE, "--sampler", "tpee"], ("unknown sampler 'tpee'", "did you mean 'tpe'"), study()),
    Case(
        "unknown-pruner", [*TUNE, "--pruner", "medain"], ("unknown pruner 'medain'", "did you mean 'median'"), study()
    ),
    Case("unknown-phase", [*TUNE, "--phase", "phase9"], ("unknown phase 'phase9'", "add a phases: section"), study()),
    Case("unknown-grid", [*TUNE, "--grid", "quick"], ("unknown grid 'quick'", "add a grids: section"), study()),
    Case(
        "unknown-metric",
        [*TUNE, "--objective", "val_acc2"],
        ("unknown metric 'val_acc2'", "did you mean 'val_acc'"),
        study(),
    ),
    Case(
        "metric-of-another-task",
        [*TUNE, "--objective", "val_mse"],
        ("'val_mse' does not exist for a classification task", "use one of"),
        study(),
    ),
    Case(
        "override-without-equals",
        ["tune", "train.lr", "--save-dir", "runs"],
        ("override 'train.lr'", "section.key=value"),
    ),
    Case(
        "missing-config-file",
        ["tune", "-c", "nope.yaml", "--save-dir", "runs"],
        ("nope.yaml", "not found", "check the path"),
    ),
    Case(
        "missing-plugin-file",
        ["tune", "--plugin", "nope.py", "--save-dir", "runs"],
        ("--plugin nope.py", "file not found"),
    ),
    # --------------------------------------------------------------- data
    Case(
        "npz-ragged-object-array",
        TUNE,
        ("r.npz", "object arrays", "allow_pickle=true", "save x padded"),
        data_study("r.npz", npz(x=ragged(), y=np.array([0, 1, 0]))),
    ),
    Case(
        "npz-ragged-shape",
        TUNE,
        ("r.npz", "shape (10,)", "[sum(T_i), C]"),
        data_study("r.npz", npz(x=np.arange(10.0), y=np.array([0, 1, 0]))),
    ),
    Case(
        "npz-empty-arrays",
        TUNE,
        ("e.npz", "empty", "at least one sequence"),
        data_study("e.npz", npz(x=np.zeros((0, 5, 2)), y=np.zeros((0,)))),
    ),
    Case(
        "npz-nan",
        TUNE,
        ("n.npz", "sequence 3", "NaN", "missing=interpolate"),
        data_study("n.npz", npz(x=with_value(np.nan), y=np.arange(20) % 2)),
    ),
    Case(
        "npz-inf",
        TUNE,
        ("i.npz", "sequence 3", "infinite", "replace or drop it"),
        data_study("i.npz", npz(x=with_value(np.inf), y=np.arange(20) % 2)),
    ),
    Case("csv-inf", TUNE, ("c.csv", "infinite", "replace or drop it"), data_study("c.csv", long_csv(bad=float("inf")))),
    Case(
        "labels-missing",
        TUNE,
        ("m.npz", "no label array", "name it 'y'"),
        data_study("m.npz", npz(x=RNG.normal(size=(20, 5, 2)))),
    ),
    Case(
        "single-class",
        TUNE,
        ("s.npz", "at least 2 classes", "task=regression"),
        data_study("s.npz", npz(x=RNG.normal(size=(20, 5, 2)), y=np.zeros(20))),
    ),
    Case(
        "too-few-to-split",
        TUNE,
        ("t.npz", "every class has a single sequence", "add data"),
        data_study("t.npz", npz(x=RNG.normal(size=(3, 5, 2)), y=np.array([0, 1, 2]))),
    ),
    Case(
        "ts-broken-header",
        TUNE,
        ("h.ts:2", "needs true or false", "fix the header"),
        data_study("h.ts", write_text("@problemName x\n@classLabel maybe a\n@data\n1:a\n")),
    ),
    Case(
        "csv-without-label-column",
        TUNE,
        ("c.csv", "no 'label' column", "label_col"),
        data_study("c.csv", long_csv(label=False)),
    ),
    Case(
        "data-file-missing",
        TUNE,
        ("nope.csv: no such file", "check the path"),  # the path is shown absolute
        lambda d: study_file(d / "s.yaml", base={**TINY_BASE, "data": {"path": "nope.csv"}}),
    ),
    Case(
        "npz-not-a-zip", TUNE, ("x.npz", "not a .npz file", "numpy.savez"), data_study("x.npz", write_text("just text"))
    ),
    # --------------------------------------------------------------- environment, storage, resume
    Case(
        "save-dir-unwritable",
        ["tune", "-c", "s.yaml", "--save-dir", "afile/runs"],
        ("--save-dir afile/runs", "not writable", "choose a directory"),
        lambda d: (study_file(d / "s.yaml"), (d / "afile").write_text("")),
    ),
    Case(
        "storage-unreachable-with-password",
        [*TUNE, "--storage", f"postgresql://alice:{PASSWORD}@127.0.0.1:9/db"],
        ("postgresql://alice:***@127.0.0.1:9/db", "cannot open it", "check the URL"),
        study(),
        secret=PASSWORD,
    ),
    Case(
        "storage-bad-scheme",
        [*TUNE, "--storage", "nosuchdb://x/y"],
        ("storage nosuchdb://x/y", "check the URL"),
        study(),
    ),
    Case(
        "resume-nonexistent-study",
        [*TUNE, "--resume", "--study-name", "nope"],
        ("no study 'nope'", "drop --resume"),
        study(),
    ),
    Case(
        "resume-with-nothing-stored",
        [*TUNE, "--resume"],
        ("--resume: no study named 'rel' or 'rel-<timestamp>'", "pass --study-name"),
        study(),
    ),
    Case(
        "best-params-unknown-key",
        [*TUNE, "--best-params", "bp.json"],
        ("--best-params bp.json", "'train.lrr'", "did you mean 'train.lr'"),
        lambda d: (study_file(d / "s.yaml"), (d / "bp.json").write_text('{"train.lrr": 0.1}')),
    ),
    Case(
        "enqueue-unknown-key",
        [*TUNE, "--enqueue", "q.json"],
        ("--enqueue q.json", "'model.hidden_dimm'", "did you mean"),
        lambda d: (study_file(d / "s.yaml"), (d / "q.json").write_text('[{"model.hidden_dimm": 4}]')),
    ),
    Case(
        "enqueue-malformed-json",
        [*TUNE, "--enqueue", "q.json"],
        ("--enqueue q.json", "not valid YAML/JSON", "fix the syntax"),
        lambda d: (study_file(d / "s.yaml"), (d / "q.json").write_text('[{"model.hidden_dim": 4,}]')),
    ),
    Case(
        "checkpoint-with-pickled-object",
        ["evaluate", "evil.pt"],
        ("evil.pt", "not a tunelab checkpoint", "never pickled objects"),
        lambda d: torch.save({"format": "tunelab-checkpoint-1", "x": _Pwn(d / "PWNED")}, d / "evil.pt"),
        check=not_pwned,
    ),
    Case(
        "run-dir-with-plain-pickle",
        ["evaluate", "run"],
        ("best_model.pt", "not a tunelab checkpoint", "refused to load it safely"),
        lambda d: ((d / "run").mkdir(), (d / "run" / "best_model.pt").write_bytes(pickle.dumps(_Pwn(d / "PWNED")))),
        check=not_pwned,
    ),
    Case(
        "checkpoint-not-ours",
        ["evaluate", "other.pt"],
        ("other.pt", "not a tunelab checkpoint", "no tunelab format marker"),
        lambda d: torch.save({"weights": torch.zeros(2)}, d / "other.pt"),
    ),
]


def _tree(d: Path) -> set[str]:
    return {p.relative_to(d).as_posix() for p in d.rglob("*")}


def assert_refused(d: Path, out: Outcome, case: Case, before: set[str]) -> None:
    err = out.stderr.strip()
    assert out.code == 2, (out.code, out.output[-2000:])
    assert "Traceback" not in out.output, out.output[-2000:]
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    missing = [n for n in case.needles if n not in err]
    assert not missing, f"{missing} not in: {err}"
    # nothing half-created: no save dir, storage file or study
    assert _tree(d) == before, sorted(_tree(d) - before)
    if case.secret is not None:
        assert case.secret not in out.output
        for p in d.rglob("*"):
            assert not p.is_file() or case.secret.encode() not in p.read_bytes(), p
    if case.check is not None:
        case.check(d, out)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_cleanly(tmp_path: Path, case: Case) -> None:
    if case.setup is not None:
        case.setup(tmp_path)
    before = _tree(tmp_path)
    out = invoke_main(case.args, cwd=tmp_path)
    assert_refused(tmp_path, out, case, before)
    FIGURES["bad_inputs"] += 1


END_TO_END = [
    "yaml-malformed",
    "unknown-model-flag",
    "npz-nan",
    "checkpoint-with-pickled-object",
    "resume-nonexistent-study",
]


@pytest.mark.parametrize("case_id", END_TO_END)
def test_end_to_end_in_a_subprocess(tmp_path: Path, case_id: str) -> None:
    """The console script's own exit code and stderr, in a fresh interpreter."""
    case = next(c for c in CASES if c.id == case_id)
    if case.setup is not None:
        case.setup(tmp_path)
    before = _tree(tmp_path)
    done = run_cli(*case.args, cwd=tmp_path)
    assert_refused(tmp_path, Outcome(done.returncode, done.stdout, done.stderr), case, before)


def test_a_password_in_the_storage_url_never_reaches_output_or_artifacts(tmp_path: Path) -> None:
    """A real study on PostgreSQL through a URL with a password (CI's server trusts local users,
    so any password connects): the console, study.json, study.yaml, trials.csv... never hold it."""
    import os
    import uuid

    url = os.environ.get("TUNELAB_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("TUNELAB_TEST_POSTGRES_URL is not set (.ci/run sets it to the CI PostgreSQL)")
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1) if "@" in rest else ("postgres", rest)
    secret_url = f"{scheme}://{user.split(':')[0]}:{PASSWORD}@{host}"
    name = f"pw-{uuid.uuid4().hex[:8]}"
    study_file(tmp_path / "s.yaml", budget={"n_trials": 1})
    try:
        out = invoke_main([*TUNE, "--storage", secret_url, "--study-name", name], cwd=tmp_path)
        assert out.code == 0, out.output[-3000:]
        again = invoke_main(
            ["analyze", str(tmp_path / "runs" / name), "--storage", secret_url, "--no-plots"], cwd=tmp_path
        )
        assert again.code == 0, again.output[-3000:]
    finally:
        from tunelab.tune.study import make_storage

        optuna.delete_study(study_name=name, storage=make_storage(url))
    assert PASSWORD not in out.output + again.output and ":***@" in out.output
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "study.json" for p in files)
    leaked = [p for p in files if PASSWORD.encode() in p.read_bytes()]
    assert not leaked, leaked
    FIGURES["bad_inputs"] += 1


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)
