"""Which process runs which trial, so a resumed study fails the trials of a killed process at once.

Heartbeats fail a lost trial only after ``grace_period`` seconds (60 by default) and only when a
later trial starts, so a study killed and resumed right away kept its interrupted trial RUNNING to
the end.  Here each process running trials opens a *session* (a study system attribute naming its
host, PID namespace, PID and process start time) and *claims* each trial it starts.  On open,
:func:`reap_orphans` fails, and re-queues like the heartbeat rule, every RUNNING trial

* claimed by a process of this host that no longer exists, or
* not yet claimed (killed between Optuna creating it and the objective starting) while no other
  session that could own it is open: every other session of this host has ended and none of
  another host is open.

Trials of other hosts are never judged here (their PIDs mean nothing on this one): heartbeats
cover them.  Works through the public storage API, for RDB and journal storages alike.
"""

from __future__ import annotations

import logging
import os
import socket
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

__all__ = [
    "OWNER_ATTR",
    "claim",
    "close_session",
    "host_id",
    "open_session",
    "reap_orphans",
    "set_host_id",
    "this_process",
]

log = logging.getLogger(__name__)
OWNER_ATTR = "tunelab:owner"
_SESSION = "tunelab:session:"


_HOST_ID: str | None = None


def set_host_id(value: str | None) -> None:
    """Claim trials under ``value`` instead of this host's identity (tests that simulate hosts)."""
    global _HOST_ID
    _HOST_ID = value


def host_id() -> str | None:
    """The host identity set by :func:`set_host_id`, if any."""
    return _HOST_ID


def _host() -> str:
    if _HOST_ID is not None:
        return f"{_HOST_ID}|"
    try:  # containers on one host share a hostname rarely, a PID namespace never
        ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        ns = ""
    return f"{socket.gethostname()}|{ns}"


def _started(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (tells a reused PID apart), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return "Z" if fields[0] in ("Z", "X") else fields[19]  # a zombie has ended


def this_process() -> str:
    """``host|pidns|pid|start``: this process, unique across PID reuse."""
    pid = os.getpid()
    return f"{_host()}|{pid}|{_started(pid) or ''}"


def _alive(token: str) -> bool | None:
    """Whether the process of ``token`` still runs; None when it ran on another host."""
    parts = token.split("|")
    if len(parts) != 4 or "|".join(parts[:2]) != _host() or not parts[2].isdigit():
        return None
    pid, start = int(parts[2]), parts[3]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    now = _started(pid)
    return not (now == "Z" or (start and now is not None and now != start))


def open_session(study: optuna.Study) -> str:
    """Record that this process runs trials of ``study`` (before it starts any)."""
    token = this_process()
    study._storage.set_study_system_attr(study._study_id, _SESSION + token, True)
    return token


def close_session(study: optuna.Study, token: str) -> None:
    """This process runs no more trials of ``study``."""
    try:
        study._storage.set_study_system_attr(study._study_id, _SESSION + token, False)
    except Exception:  # the storage went away: the session then looks open, which is the safe side
        log.debug("session %s not closed", token, exc_info=True)


def claim(trial: optuna.Trial) -> None:
    """Mark ``trial`` as run by this process (first thing a trial does)."""
    trial.storage.set_trial_system_attr(trial._trial_id, OWNER_ATTR, this_process())


def reap_orphans(study: optuna.Study, max_retry: int | None, me: str | None = None) -> list[int]:
    """Fail RUNNING trials whose process is gone (see the module doc) and re-queue each.

    ``me``: this process's own session, which never counts as another owner.  Returns the numbers
    of the trials it failed.
    """
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.trial import TrialState

    storage = study._storage
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return []
    # sessions are read after the trials: a process registers before it creates a trial
    sessions = {
        k.removeprefix(_SESSION): bool(v)
        for k, v in storage.get_study_system_attrs(study._study_id).items()
        if k.startswith(_SESSION)
    }
    others_open = any(open_ and tok != me and _alive(tok) is not False for tok, open_ in sessions.items())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
    failed = []
    for t in running:
        owner = t.system_attrs.get(OWNER_ATTR)
        gone = _alive(owner) is False if owner else not others_open
        if not gone:
            continue
        try:
            if not storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process got there first
        log.warning("trial %d was interrupted (its process ended); failing it and queueing a retry", t.number)
        failed.append(t.number)
        retry(study, storage.get_trial(t._trial_id))
    return failed
