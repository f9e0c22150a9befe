"""Every command in the examples/seed00N_*.yaml header comments runs, in order, with a tiny budget
(one trial, one epoch, a few dozen short sequences), and leaves the artifacts it promises.

The commands are read from the files themselves, so a command documented there is a command tested
here: ``runs/`` becomes a temporary folder, ``<timestamp>`` the study group the earlier commands
made, every ``tune`` gets ``--trials 1 --epochs 1 --device cpu`` and the seed's tiny overrides.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunelab.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

#: overrides that shrink each seed's data and model (the commands' own flags still apply)
TINY = {
    "seed000_asl": ["--classes", "3", "train.batch_size=64"],
    "seed001_phases": ["--classes", "3", "train.batch_size=64"],
    "seed002_unet_grid": ["data.options.n=24", "data.options.min_len=32", "data.options.max_len=48", "model.depth=2"],
    "seed003_optim": ["data.options.n=40", "model.hidden_dim=8", "model.conv_channels=8"],
    "seed004_gestures": ["data.options.n=60", "data.options.classes=4", "model.hidden_dim=8"],
}
SEEDS = sorted(TINY)


def commands(path: Path) -> list[list[str]]:
    """The ``tunelab ...`` commands of a study file's header comment (continuations joined,
    ``a ; b`` split, trailing comments dropped)."""
    lines, joined = [], ""
    for raw in path.read_text().splitlines():
        if not raw.startswith("#"):
            break
        text = raw[1:].strip()
        if joined:
            joined += " " + text
        elif text.startswith("tunelab "):
            joined = text
        if joined and joined.endswith("\\"):
            joined = joined[:-1].rstrip()
            continue
        if joined:
            lines.append(joined)
            joined = ""
    out = []
    for line in lines:
        for part in line.split(";"):
            words = shlex.split(part, comments=True)
            if words and words[0] == "tunelab":
                out.append(words[1:])
    return out


def _with(args: list[str], flag: str, value: str, *aliases: str) -> list[str]:
    """``args`` with ``flag`` (or an alias) set to ``value``."""
    for i, a in enumerate(args):
        if a in (flag, *aliases):
            return [*args[: i + 1], value, *args[i + 2 :]]
    return [*args, flag, value]


def _resolve(word: str, runs: Path) -> str:
    """``runs/name-<timestamp>/...`` → the newest such folder under ``runs``."""
    if not word.startswith("runs/"):
        return word
    word = str(runs / word.removeprefix("runs/"))
    if "<timestamp>" in word:
        head, _, tail = word.partition("<timestamp>")
        found = sorted(Path(head).parent.glob(Path(head).name + "*"))
        assert found, f"no study group for {word}"
        # the newest study (or file) it names: a group of --auto-tune-all studies is not one study
        done = [f for f in found if Path(f"{f}{tail}").is_file() or Path(f"{f}{tail}", "study.json").is_file()]
        word = str((done or found)[-1]) + tail
    return word


def tiny(args: list[str], seed: str, runs: Path) -> list[str]:
    args = [_resolve(a.replace("examples/", f"{EXAMPLES}/", 1) if a.startswith("examples/") else a, runs) for a in args]
    command = args[0]
    if command == "tune":
        args = _with(args, "--trials", "1", "--n-trials")
        args = _with(args, "--epochs", "1")
        return [*args, "--device", "cpu", "--save-dir", str(runs), "--no-report", *TINY[seed]]
    if command == "train":
        return [*args, "--device", "cpu", "--save-dir", str(runs)]
    if command == "monitor":
        return [*args, "--once"]
    if command == "evaluate":
        return [*args, "--device", "cpu"]
    return args


def run(args: list[str]) -> str:
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, f"tunelab {shlex.join(args)}\n{out.output}\n{out.exception!r}"
    return out.output


def test_every_seed_file_documents_its_commands() -> None:
    for seed in SEEDS:
        listed = commands(EXAMPLES / f"{seed}.yaml")
        assert listed and all(c[0] in ("tune", "train", "evaluate", "analyze", "monitor") for c in listed), seed
    assert commands(EXAMPLES / "seed001_phases.yaml")[2][:5] == [
        "tune",
        "-c",
        "examples/seed001_phases.yaml",
        "--phase",
        "phase2_architecture",
    ]


@pytest.mark.parametrize("seed", SEEDS)
def test_seed_commands_run_and_leave_their_artifacts(
    seed: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)  # W&B offline, under the save dir
    runs = tmp_path / "runs"
    for listed in commands(EXAMPLES / f"{seed}.yaml"):
        target = next((a for a in listed if a.startswith("runs/")), None)
        if listed[0] == "evaluate" and target and not Path(_resolve(target, runs)).exists():
            # seed 001 evaluates its last phase: run it as the user would have, first
            phase = Path(target).name
            run(tiny(["tune", "-c", f"examples/{seed}.yaml", "--phase", phase], seed, runs))
        before = set(runs.rglob("trials.csv")) if runs.exists() else set()
        caplog.clear()
        args = tiny(listed, seed, runs)
        output = run(args)
        new = set(runs.rglob("trials.csv")) - before
        if listed[0] == "tune":
            assert "Best trial:" in output, shlex.join(args)
            assert "no study of the previous phase" not in caplog.text + output  # alternatives do not chain
            assert all((p.parent / "best_params.json").is_file() for p in new) and (new or "--resume" in listed)
            if "--auto-tune-all" in listed:
                (group,) = {p.parents[1] for p in new}
                assert (group / "comparison.csv").is_file()
            if "--best-params" in listed:
                given = Path(args[args.index("--best-params") + 1])
                assert {p.parents[1] for p in new} == {given.parents[1]}  # one phased search, one folder
            for flag, made in (("--wandb", "wandb"), ("--tensorboard", "tensorboard"), ("--mlflow", "mlflow.db")):
                if flag in listed:
                    assert (runs / made).exists(), flag
        elif listed[0] == "analyze":
            assert (Path(args[1]) / "report.html").is_file()
        elif listed[0] == "evaluate":
            assert re.search(r"test_(acc|loss)", output)
        elif listed[0] == "train":
            assert "run directory:" in output
        elif listed[0] == "monitor":
            assert Path(args[1]).name in output
