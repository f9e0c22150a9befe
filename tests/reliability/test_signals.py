"""Ctrl+C (SIGINT) and SIGTERM mid-trial: the trial is FAIL "interrupted", the finished trials'
artifacts are written, the exit code is 130/143, and ``--resume`` finishes the study."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.reliability.common import FINISHED, check_artifacts, cli_cmd, env, run_cli, study_file, trials_of
from tests.reliability.conftest import FIGURES


def _as_a_terminal_job(cmd: list[str]) -> list[str]:
    """``tunelab ARGS`` taking Ctrl+C like a terminal's foreground job, also when this test run was
    started in the background (`cmd &` starts with SIGINT ignored, and tunelab keeps an ignored
    signal ignored).  The child's own Python sets Python's handler (KeyboardInterrupt), as Python
    does at start in a terminal; SIG_DFL would kill a process that left it so (what the packs did
    before ``tell_gate`` covered them).  Not a ``preexec_fn``: running Python
    between fork and exec in a worker where gRPC's threads live (the tracking tests load it)
    aborted the child once (SIGABRT, "epoll_wait error: Bad file descriptor")."""
    python, _, module, *args = cmd
    reset = "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler)"
    return [python, "-c", f"{reset}; runpy.run_module({module!r}, run_name='__main__', alter_sys=True)", *args]


def _wait_for(path_glob: str, root: Path, count: int, proc: subprocess.Popen[str], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while len(list(root.glob(path_glob))) < count:
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "the study never got there"
        time.sleep(0.02)


def _interrupted(
    tmp_path: Path, name: str, n_trials: int, wait_for: str, sig: signal.Signals, extra: tuple[str, ...] = ()
) -> tuple[subprocess.Popen[str], str, Path, list[str]]:
    """A tiny study of ``n_trials`` (40 epochs a trial: long enough to be caught mid-training),
    run as a terminal's job and sent ``sig`` 0.3 s after ``wait_for`` appears in its directory:
    (the ended process, its output, the runs folder, the CLI arguments to resume it with)."""
    base = {**__import__("tests.reliability.common", fromlist=["TINY_BASE"]).TINY_BASE}
    base["train"] = {**base["train"], "max_epochs": 40}
    cfg = study_file(tmp_path / "study.yaml", base=base, pruner="none", budget={"n_trials": n_trials})
    runs = tmp_path / "runs"
    args = ["tune", "-c", str(cfg), "--study-name", name, "--save-dir", str(runs), "--no-report", *extra]
    proc = subprocess.Popen(
        _as_a_terminal_job(cli_cmd(*args)),
        cwd=tmp_path,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_for(wait_for, runs / name, 1, proc)
        time.sleep(0.3)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc, out, runs, args


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_fails_the_running_trial_and_resume_finishes(tmp_path: Path, sig: signal.Signals, code: int) -> None:
    name = "sig"
    proc, out, runs, args = _interrupted(tmp_path, name, 4, "trials/1-*/metrics.jsonl", sig)  # in trial 1
    assert proc.returncode == code, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    FIGURES["signals"] += 1

    trials = trials_of(runs / "tunelab.db", name)
    states = [t.state.name for t in trials]
    assert "RUNNING" not in states, states
    assert states[0] == "COMPLETE" and states[-1] == "FAIL", states
    assert trials[-1].user_attrs.get("reason") == "interrupted"
    study_dir = runs / name
    assert not check_artifacts(study_dir)  # no temporary file left behind either
    results = json.loads((study_dir / "study_results.json").read_text())
    assert [t["state"] for t in results["trials"]] == states  # written after the interrupt
    assert results["trials"][-1]["reason"] == "interrupted"
    assert (study_dir / "best_model.pt").is_file() and (study_dir / "best_params.json").is_file()
    assert (study_dir / trials[0].user_attrs["run_dir"] / "best_model.pt").is_file()

    remaining = 4 - sum(s in FINISHED for s in states)
    done = run_cli(*args, "--resume", "--trials", str(remaining), cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    states = [t.state.name for t in trials_of(runs / "tunelab.db", name)]
    assert sum(s in FINISHED for s in states) == 4 and "RUNNING" not in states, states
    check_artifacts(study_dir)


def test_ctrl_c_in_a_pack_fails_its_members_and_leaves_nothing_running(tmp_path: Path) -> None:
    """Packs (the GPU default) under Ctrl+C: exit 130, no traceback, every unfinished member FAIL
    "interrupted", none RUNNING (before ``held()``, 1 stress run in 30 left one), and resume ends."""
    name = "pack"
    proc, out, runs, args = _interrupted(
        tmp_path, name, 6, "trials/*/metrics.jsonl", signal.SIGINT, ("--pack-size", "2")
    )
    assert proc.returncode == 130 and "Traceback" not in out, out[-3000:]
    trials = trials_of(runs / "tunelab.db", name)
    assert "RUNNING" not in [t.state.name for t in trials]
    assert any(t.state.name == "FAIL" and t.user_attrs.get("reason") == "interrupted" for t in trials)
    remaining = 6 - sum(t.state.name in FINISHED for t in trials)
    done = run_cli(*args, "--resume", "--trials", str(remaining), cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    states = [t.state.name for t in trials_of(runs / "tunelab.db", name)]
    assert sum(s in FINISHED for s in states) == 6 and "RUNNING" not in states, states


def _children(pid: int) -> list[int]:
    return [int(c) for f in Path(f"/proc/{pid}/task").glob("*/children") for c in f.read_text().split()]


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads the process table from /proc")
def test_workers_stop_when_their_parent_is_killed(tmp_path: Path) -> None:
    from tests.reliability.common import TINY_BASE

    # 40 trials of ~300 epochs: orphans that went on would train for minutes
    base = {**TINY_BASE, "train": {**TINY_BASE["train"], "max_epochs": 300, "early_stopping": {"patience": None}}}
    cfg = study_file(tmp_path / "study.yaml", base=base, pruner="none", budget={"n_trials": 40})
    runs, name = tmp_path / "runs", "orphans"
    args = ["tune", "-c", str(cfg), "--study-name", name, "--save-dir", str(runs), "--no-report"]
    proc = subprocess.Popen(
        cli_cmd(*args, "--workers", "2"), cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    workers: list[int] = []
    try:
        _wait_for("trials/*/metrics.jsonl", runs / name, 2, proc)  # both workers are training
        workers = _children(proc.pid)
        assert len(workers) >= 2, workers
        proc.kill()  # SIGKILL: the parent can clean nothing up
        proc.wait(timeout=30)
        deadline = time.monotonic() + 45  # the parent watch polls each second; a loaded CI machine is slow
        while any(_running(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_running(w) for w in workers), "orphaned workers kept training"
        FIGURES["orphans"] += len(workers)
    finally:
        if proc.poll() is None:
            proc.kill()
        for w in workers:
            if _running(w):
                os.kill(w, signal.SIGKILL)
    trials = trials_of(runs / "tunelab.db", name)
    states = [t.state.name for t in trials]
    assert "RUNNING" not in states and len(trials) < 40, states
    failed = [t.user_attrs.get("reason") for t in trials if t.state.name == "FAIL"]
    assert failed and set(failed) == {"interrupted"}, failed  # each worker failed its own trial
    finished = sum(s in FINISHED for s in states)
    done = run_cli(*args, "--resume", "--trials", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    states = [t.state.name for t in trials_of(runs / "tunelab.db", name)]
    assert sum(s in FINISHED for s in states) == finished + 1 and "RUNNING" not in states, states


def test_a_signal_while_optuna_tells_a_trial_waits_for_the_next_trial() -> None:
    """Between trials (Optuna's tell and ask) Ctrl+C is held and raised when the next trial starts
    (Optuna's tell is not interrupt-safe); inside a trial it acts at once, and so does a second press."""
    import os

    from tunelab.tune.execution.signals import tell_gate

    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (a `&` job ignores it)
    try:
        with tell_gate() as gate:
            assert gate is not None
            gate.close()
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler has run: nothing raised while the gate is closed
            with pytest.raises(KeyboardInterrupt):
                gate.open()
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.5)
            gate.close()
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            with pytest.raises(KeyboardInterrupt):  # a second press acts at once, even with the gate closed
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.5)
            gate.open()  # nothing is held any more
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_signal_the_process_ignores_stays_ignored_through_the_gate() -> None:
    """`nohup tunelab tune ... &`: the shell starts the job with SIGINT ignored; the gate keeps it so."""
    import os

    from tunelab.tune.execution.signals import tell_gate

    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with tell_gate() as gate:
            assert gate is not None and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            gate.close()
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            gate.open()  # nothing was held
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_signal_inside_a_storage_call_is_raised_when_the_call_returns() -> None:
    """Ctrl+C landing inside a storage call (here: a function of a module under ``sqlalchemy``)
    waits until the call has returned, then acts: a half-read SQLite cursor left the connection's
    read snapshot open and the trial's next write failed with "database is locked"."""
    import os

    from tunelab.tune.execution.signals import in_storage_call, tell_gate

    code = (
        "def call():\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    end = time.monotonic() + 0.2\n"
        "    while time.monotonic() < end:\n"
        "        pass\n"
        "    return 'returned'\n"
        "def twice():\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(0.05)\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    end = time.monotonic() + 0.2\n"
        "    while time.monotonic() < end:\n"
        "        pass\n"
        "    return 'returned'\n"
    )
    storage_module: dict[str, object] = {"__name__": "sqlalchemy.engine.base", "os": os, "signal": signal, "time": time}
    exec(code, storage_module)  # noqa: S102  (a function whose frames read as a storage module's)
    done: list[object] = []
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with tell_gate() as gate:
            assert gate is not None
            with pytest.raises(KeyboardInterrupt):
                done.append(storage_module["call"]())  # type: ignore[operator]
                time.sleep(1)  # the held signal is raised here, a few ms after the call
            assert done == ["returned"]
            done.clear()
            with pytest.raises(KeyboardInterrupt):  # pressed twice: the second acts inside the call
                done.append(storage_module["twice"]())  # type: ignore[operator]
            assert done == []
            with pytest.raises(KeyboardInterrupt):  # outside a storage call it acts at once
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)
                done.append("slept")
            assert done == []
    finally:
        signal.signal(signal.SIGINT, before)
    assert not in_storage_call(__import__("sys")._getframe())


def test_a_signal_a_finalizer_swallowed_is_sent_again() -> None:
    """Ctrl+C raised inside ``__del__`` (or a weakref callback the garbage collector runs) is
    swallowed by Python; the gate sends it again, and it acts outside the finalizer."""
    import os

    from tunelab.tune.execution.signals import tell_gate

    finalized: list[str] = []

    class Finalized:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGINT)
            end = time.monotonic() + 0.1
            while time.monotonic() < end:
                pass
            finalized.append("ran")

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with tell_gate() as gate:
            assert gate is not None
            obj = Finalized()
            with pytest.raises(KeyboardInterrupt):
                del obj  # the interrupt raised in __del__ is swallowed there ...
                time.sleep(1)  # ... and raised again here
            assert finalized == []  # __del__ was left by the first interrupt
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_held_block_finishes_before_a_signal_acts() -> None:
    """Packs ask a trial and mark it open (or tell it and mark it closed) in a ``held()`` block:
    an interrupt waits for the block's end, so no trial is left RUNNING unseen.  Outside a gate's
    block ``held()`` changes nothing."""
    import os

    from tunelab.tune.execution.signals import held, tell_gate

    done: list[str] = []
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with tell_gate():
            with pytest.raises(KeyboardInterrupt):
                with held():
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(0.05)
                    done.append("block")
                done.append("after")
            assert done == ["block"]
        with pytest.raises(KeyboardInterrupt), held():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)
            done.append("no gate")
        assert done == ["block"]
    finally:
        signal.signal(signal.SIGINT, before)
