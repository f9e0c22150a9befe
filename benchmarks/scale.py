"""Load benchmark: many workers of tiny trials on one study, against PostgreSQL directly and through
the gRPC storage proxy (``tunelab storage-server``).

    python benchmarks/scale.py --quick            # 4 and 8 workers, 100 trials (about a minute)
    python benchmarks/scale.py --append           # full: 16 and 64 workers, 1,000 trials; adds RESULTS.md
    python benchmarks/scale.py --workers 32 --trials 500 --via proxy

The storage is what is measured: each worker is its own process (forked from a server process that
imported tunelab and Optuna once, so 64 workers start in seconds) and runs trials whose objective
only sleeps (``--sleep-ms``).  Workers open the study with tunelab's own ``make_storage`` (the URL
parsing, engine options and heartbeats ``tunelab worker`` gets): ``postgresql://`` directly, or
``grpc://`` to a ``tunelab storage-server`` subprocess in front of the same database.

Per trial, a worker times (in milliseconds):

* **ask**: ``study.ask()`` with two suggested parameters (a random sampler, so no sampler work);
* **tell**: ``study.tell()`` with the value;
* **loop** (``--loop tunelab``, the default): what ``tunelab worker`` adds around each trial: the
  budget read (:func:`tunelab.tune.execution.cluster.budget_left`), the stale-trial rule (Optuna's
  ``fail_stale_trials`` on PostgreSQL, tunelab's ``reap_stale`` on gRPC) and the trial's owner
  claim; the trial's heartbeat (Optuna's thread, or tunelab's on gRPC) runs beside the objective.
  ``--loop plain`` is bare ask/tell.

Workers draw trial slots from a shared counter, so exactly ``--trials`` trials are asked.  At the
end: trials lost (not COMPLETE in the storage), duplicate trial numbers (in the storage and among
what the workers were handed), errors (storage calls that raised), and the peak number of database
connections the configuration held while the workers opened the study and while they ran trials
(``pg_stat_activity``, matched by an ``application_name`` given to this run's connections, so
other clients of the database do not count).  Each configuration
runs on a fresh study, deleted afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import os
import platform
import shlex
import socket
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
# the worker server imports tunelab before it applies sys.path: without this, an installed tunelab
# (another checkout's editable install) would be the one measured
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)

RESULTS = ROOT / "benchmarks" / "RESULTS.md"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
PRELOAD = [
    "optuna",
    "tunelab.storage",
    "tunelab.tune.execution.cluster",
    "tunelab.tune.execution.heartbeat",
    "tunelab.tune.execution.owners",
]
HEARTBEAT = (10, 60, 2)  # tunelab's defaults: interval, grace period, retries


@dataclass
class Result:
    """One configuration's figures."""

    via: str  # "direct" or "proxy"
    workers: int
    trials: int
    seconds: float = 0.0
    complete: int = 0
    lost: int = 0
    duplicates: int = 0
    errors: int = 0
    peak_connections: int = 0  # while trials ran
    peak_at_start: int = 0  # while the workers opened the study
    samples: dict[str, list[float]] = field(default_factory=lambda: {"ask": [], "tell": [], "loop": []})
    first_error: str = ""

    @property
    def trials_per_s(self) -> float:
        return self.complete / self.seconds if self.seconds else 0.0

    def pct(self, op: str, q: float) -> float:
        xs = self.samples.get(op) or []
        return float(np.percentile(xs, q)) if xs else float("nan")


def tagged(url: str, tag: str) -> str:
    """``url`` with ``application_name=tag``, so this run's connections can be counted apart."""
    return f"{url}{'&' if '?' in url else '?'}application_name={tag}"


# --------------------------------------------------------------------------- the worker


def _heartbeat(study: Any, trial: Any, grpc: bool) -> Any:
    """The trial's heartbeat, as tunelab runs it: tunelab's own thread on gRPC, Optuna's on RDB."""
    if grpc:
        from tunelab.tune.execution.heartbeat import beating

        return beating(study, trial._trial_id, HEARTBEAT[0])
    from optuna.storages._heartbeat import get_heartbeat_thread

    return get_heartbeat_thread(trial._trial_id, study._storage)


def _before_trial(study: Any, n_trials: int, grpc: bool) -> None:
    """What ``tunelab worker`` reads before each trial: the budget and the stale-trial rule."""
    import optuna

    from tunelab.tune.execution.cluster import budget_left
    from tunelab.tune.execution.heartbeat import reap_stale

    budget_left(study, n_trials, None)
    if grpc:
        reap_stale(study, HEARTBEAT[1], HEARTBEAT[2])
    else:
        optuna.storages.fail_stale_trials(study)


def _one_trial(study: Any, n_trials: int, sleep_s: float, loop: bool, grpc: bool, out: dict[str, Any]) -> None:
    """Run one timed trial; its number goes to ``out["numbers"]``, its timings to ``out[op]``."""
    from optuna.distributions import FloatDistribution

    from tunelab.tune.execution.owners import claim

    t0 = time.perf_counter()
    if loop:
        _before_trial(study, n_trials, grpc)
    t1 = time.perf_counter()
    trial = study.ask({"x": FloatDistribution(-1.0, 1.0), "lr": FloatDistribution(1e-4, 1e-1, log=True)})
    t2 = time.perf_counter()
    out["numbers"].append(trial.number)
    if loop:
        claim(trial)
    t3 = time.perf_counter()
    with _heartbeat(study, trial, grpc) if loop else nullcontext():
        time.sleep(sleep_s)
    t4 = time.perf_counter()
    study.tell(trial, trial.params["x"] ** 2)
    t5 = time.perf_counter()
    out["ask"].append(1e3 * (t2 - t1))
    out["tell"].append(1e3 * (t5 - t4))
    if loop:
        out["loop"].append(1e3 * ((t1 - t0) + (t3 - t2)))


def worker(url: str, name: str, n_trials: int, sleep_s: float, loop: bool, counter: Any, go: Any, q: Any) -> None:
    """One worker process: open the study, wait for the start, run trials while slots are left."""
    import optuna

    from tunelab.storage import grpc_address, make_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")  # heartbeat-outside-optimize and experimental warnings
    out: dict[str, Any] = {"numbers": [], "ask": [], "tell": [], "loop": [], "errors": 0, "first_error": ""}
    try:
        storage = make_storage(url, heartbeat_interval=HEARTBEAT[0], grace_period=HEARTBEAT[1], max_retry=HEARTBEAT[2])
        sampler = optuna.samplers.RandomSampler(seed=os.getpid())
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    except Exception as exc:  # a refused connection is a result, not a crash of the benchmark
        out["errors"], out["first_error"] = 1, f"open: {exc}"[:300]
        q.put(("ready", os.getpid()))
        q.put(("done", out, time.time()))
        return
    grpc = grpc_address(url) is not None
    q.put(("ready", os.getpid()))
    go.wait()
    while True:
        with counter.get_lock():
            if counter.value >= n_trials:
                break
            counter.value += 1
        try:
            _one_trial(study, n_trials, sleep_s, loop, grpc, out)
        except Exception as exc:  # the slot's trial is lost; say why once, count every one
            out["errors"] += 1
            out["first_error"] = out["first_error"] or f"{type(exc).__name__}: {exc}"[:300]
    q.put(("done", out, time.time()))


# --------------------------------------------------------------------------- the run


class ConnectionSampler(threading.Thread):
    """Polls ``pg_stat_activity`` for the connections named ``tag``; keeps the peak of each phase
    (``"start"`` until :meth:`running` is called, then ``"run"``)."""

    def __init__(self, url: str, tag: str, every: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.url, self.tag, self.every = url, tag, every
        self.peaks = {"start": 0, "run": 0}
        self.phase = "start"
        self.stop = threading.Event()

    def run(self) -> None:
        import sqlalchemy as sa
        from sqlalchemy.pool import NullPool

        engine = sa.create_engine(self.url, poolclass=NullPool)
        query = sa.text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :tag")
        try:
            with engine.connect() as conn:
                while True:
                    n = int(conn.execute(query, {"tag": self.tag}).scalar() or 0)
                    self.peaks[self.phase] = max(self.peaks[self.phase], n)
                    conn.rollback()  # a fresh snapshot of pg_stat_activity on the next read
                    if self.stop.wait(self.every):
                        return
        finally:
            engine.dispose()

    def running(self) -> None:
        """The workers were released: later samples count as the run's."""
        self.phase = "run"


def max_connections(url: str) -> tuple[int, int]:
    """PostgreSQL's ``max_connections`` and the connections open on the server now (all clients)."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            limit = int(conn.execute(sa.text("SHOW max_connections")).scalar() or 0)
            used = int(conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity")).scalar() or 0)
    finally:
        engine.dispose()
    return limit, used


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def storage_server(url: str) -> Iterator[str]:
    """``tunelab storage-server`` in front of ``url`` (a subprocess, as users run it); yields its URL."""
    from optuna.storages import GrpcStorageProxy

    port = _free_port()
    cmd = [sys.executable, "-m", "tunelab", "storage-server", "--storage", url, "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # PYTHONPATH: above
    try:
        client = GrpcStorageProxy(host="127.0.0.1", port=port)
        try:
            client.wait_server_ready(timeout=120)
        except ConnectionError:
            proc.kill()
            raise RuntimeError(f"the storage server did not start: {(proc.communicate()[1] or '')[-500:]}") from None
        finally:
            client.close()
        yield f"grpc://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _collect(q: Any, procs: list[Any], kind: str, n: int, timeout: float, box: list[tuple[Any, ...]]) -> list[Any]:
    """``n`` messages of ``kind`` from the workers (fewer if workers died or ``timeout`` passed);
    ``box`` holds every message received so far, so none of another kind is dropped."""
    import queue

    deadline = time.time() + timeout
    while sum(m[0] == kind for m in box) < n and time.time() < deadline:
        try:
            box.append(q.get(timeout=1.0))
        except queue.Empty:
            if not any(p.is_alive() for p in procs):
                break
    return [m for m in box if m[0] == kind]


def _drive(
    url: str, name: str, workers: int, trials: int, sleep_s: float, loop: bool, res: Result, on_go: Any = None
) -> list[int]:
    """Start the workers, release them together (calling ``on_go()``), gather their samples;
    returns the trial numbers the workers were handed."""
    ctx = mp.get_context("forkserver")  # forked from one process that imported tunelab once
    ctx.set_forkserver_preload(PRELOAD)
    counter, go, q = ctx.Value("i", 0), ctx.Event(), ctx.Queue()
    args = (url, name, trials, sleep_s, loop, counter, go, q)
    procs = [ctx.Process(target=worker, args=args, daemon=True) for _ in range(workers)]
    for p in procs:
        p.start()
    box: list[tuple[Any, ...]] = []
    try:
        _collect(q, procs, "ready", workers, 600, box)
        if on_go is not None:
            on_go()
        t0 = time.time()
        go.set()
        done = _collect(q, procs, "done", workers, 3600, box)
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    res.seconds = max((end for _, _, end in done), default=t0) - t0
    res.errors = workers - len(done)  # a worker that died without reporting
    handed: list[int] = []
    for _, out, _ in done:
        handed += out["numbers"]
        res.errors += out["errors"]
        res.first_error = res.first_error or out["first_error"]
        for op in res.samples:
            res.samples[op] += out[op]
    return handed


def _audit(storage: Any, name: str, handed: list[int], res: Result) -> None:
    """Count lost trials and duplicate numbers in what the storage holds at the end."""
    import optuna
    from optuna.trial import TrialState

    stored = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    numbers = [t.number for t in stored]
    res.complete = sum(t.state == TrialState.COMPLETE for t in stored)
    # a trial the heartbeat rule failed is not lost when its retry (same parameters) completed
    retried = {t.system_attrs.get("failed_trial") for t in stored if t.state == TrialState.COMPLETE} - {None}
    res.lost = sum(t.state != TrialState.COMPLETE and t.number not in retried for t in stored)
    res.lost += max(0, res.trials - len(stored))
    res.duplicates = (len(numbers) - len(set(numbers))) + (len(handed) - len(set(handed)))
    if len(stored) != res.trials:
        res.first_error = res.first_error or f"{len(stored)} trials stored for {res.trials} asked"


def run_config(pg_url: str, via: str, workers: int, trials: int, *, sleep_ms: float = 5.0, loop: bool = True) -> Result:
    """Run ``trials`` tiny trials with ``workers`` processes on a fresh study in ``pg_url``, directly
    (``via="direct"``) or through a storage server (``via="proxy"``); the study is deleted after."""
    import optuna

    from tunelab.storage import make_storage

    if via not in ("direct", "proxy"):
        raise ValueError(f"via must be 'direct' or 'proxy', not {via!r}")
    tag = f"tunelab-scale-{uuid.uuid4().hex[:8]}"
    name = f"{tag}-{via}-{workers}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    admin = make_storage(pg_url)  # this process's own connections carry no tag: they do not count
    optuna.create_study(study_name=name, storage=admin)
    res = Result(via, workers, trials)
    sampler = ConnectionSampler(pg_url, tag)
    sampler.start()
    try:
        served = storage_server(tagged(pg_url, tag)) if via == "proxy" else nullcontext(tagged(pg_url, tag))
        with served as url:
            handed = _drive(url, name, workers, trials, sleep_ms / 1e3, loop, res, on_go=sampler.running)
        sampler.stop.set()
        sampler.join()
        res.peak_at_start, res.peak_connections = sampler.peaks["start"], sampler.peaks["run"]
        _audit(admin, name, handed, res)
    finally:
        sampler.stop.set()
        optuna.delete_study(study_name=name, storage=admin)
    return res


# --------------------------------------------------------------------------- the report

HEADER = (
    "| storage | workers | trials | seconds | trials/s | ask p50 | ask p99 | tell p50 | tell p99 | loop p50 | loop p99 "
    "| DB connections (peak: opening / running) | lost | duplicates | errors |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def _ms(x: float) -> str:
    return "-" if x != x else f"{x:.1f}"  # NaN: no samples


def table(results: list[Result]) -> str:
    """The results as a Markdown table (latencies in milliseconds)."""
    rows = [HEADER]
    for r in results:
        lat = [_ms(r.pct(op, q)) for op in ("ask", "tell", "loop") for q in (50, 99)]
        via = "PostgreSQL direct" if r.via == "direct" else "gRPC proxy"
        rows.append(
            f"| {via} | {r.workers} | {r.trials:,} | {r.seconds:.1f} | {r.trials_per_s:.1f} | {' | '.join(lat)} "
            f"| {r.peak_at_start} / {r.peak_connections} | {r.lost} | {r.duplicates} | {r.errors} |"
        )
    return "\n".join(rows)


def verdict(results: list[Result], limit_ms: float = 100.0) -> list[str]:
    """Per storage path: the largest worker count with no trial lost and ask/tell p99 under ``limit_ms``."""
    lines = []
    for via, label in (("direct", "PostgreSQL direct"), ("proxy", "gRPC proxy")):
        ok = [
            r.workers
            for r in results
            if r.via == via
            and r.lost == 0
            and r.duplicates == 0
            and max(r.pct("ask", 99), r.pct("tell", 99)) < limit_ms
        ]
        ran = sorted({r.workers for r in results if r.via == via})
        if ran:
            best = f"{max(ok)} workers" if ok else "none of the counts run"
            lines.append(
                f"{label}: largest worker count with 0 lost and ask/tell p99 < {limit_ms:g} ms: {best} (ran {ran})"
            )
    return lines


def machine(url: str) -> str:
    """CPU, load, library and PostgreSQL versions: what the figures depend on."""
    import grpc
    import optuna
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln),
        platform.processor() or platform.machine(),
    )
    engine = sa.create_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        pg = str(conn.execute(sa.text("SHOW server_version")).scalar())
    engine.dispose()
    limit, _ = max_connections(url)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{cpu}, {os.cpu_count()} cores (load average {load} at the end); PostgreSQL {pg} on the same machine "
        f"(max_connections {limit}); Optuna {optuna.__version__}, SQLAlchemy {sa.__version__}, grpcio "
        f"{grpc.__version__}, Python {platform.python_version()}"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="4 and 8 workers, 100 trials (about a minute)")
    ap.add_argument("--workers", type=int, nargs="+", help="worker counts (default 16 64; --quick 4 8)")
    ap.add_argument("--trials", type=int, help="trials per configuration (default 1000; --quick 100)")
    ap.add_argument("--via", choices=["direct", "proxy"], nargs="+", default=["direct", "proxy"])
    ap.add_argument("--sleep-ms", type=float, default=5.0, help="the objective's sleep (default 5 ms)")
    ap.add_argument(
        "--loop", choices=["tunelab", "plain"], default="tunelab", help="tunelab worker's loop or bare ask/tell"
    )
    ap.add_argument("--url", default=os.environ.get("TUNELAB_TEST_POSTGRES_URL") or DEFAULT_URL, help="PostgreSQL URL")
    ap.add_argument("--append", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    counts = args.workers or ([4, 8] if args.quick else [16, 64])
    trials = args.trials or (100 if args.quick else 1000)
    limit, used = max_connections(args.url)
    print(f"PostgreSQL max_connections {limit}, {used} connections open now (all clients)", flush=True)
    if max(counts) + used > limit:
        print(f"note: {max(counts)} direct workers hold {max(counts)} connections, past max_connections - {used}")
    results = []
    for via in args.via:
        for n in counts:
            r = run_config(args.url, via, n, trials, sleep_ms=args.sleep_ms, loop=args.loop == "tunelab")
            print(table([r]).splitlines()[-1] + (f"  ({r.first_error})" if r.first_error else ""), flush=True)
            results.append(r)
    cmd = "python benchmarks/scale.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    errors = [f"* {r.via}, {r.workers} workers: {r.first_error}" for r in results if r.first_error]
    block = "\n".join(
        [
            f"\n## Storage load ({'quick' if args.quick else 'full'}), {when}\n",
            f"Command: `{cmd.strip()}`  ",
            f"Machine: {machine(args.url)}.  ",
            f"Objective: {args.sleep_ms:g} ms of sleep; loop: {args.loop}; latencies in ms per trial.\n",
            table(results),
            "",
            *[f"* {line}" for line in verdict(results)],
            *errors,
            "",
        ]
    )
    print(block)
    if args.append:
        with open(RESULTS, "a") as fh:
            fh.write(block)


if __name__ == "__main__":
    main()
