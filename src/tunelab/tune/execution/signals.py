"""Ctrl+C and SIGTERM never land inside a storage call, nor while Optuna records a trial.

An interrupt raised at an arbitrary point can land in two places that corrupt the study:

* inside Optuna's tell, after the objective returned: the tell's ``except Exception`` misses it
  and its ``finally`` reads a variable the tell never set (an ``UnboundLocalError`` traceback, exit
  code 1, the trial half-told);
* inside a storage call during training (a trial's report or attribute): SQLAlchemy is left with
  a half-read SQLite cursor whose read snapshot stays open, and the next write on that connection,
  the trial's own "interrupted", fails at once with "database is locked" (the trial stays RUNNING,
  exit code 1): 7 of 130 runs of ``tests/reliability/test_signals.py``'s scenario with a random
  delay, 0 of 160 with the gate.

:class:`TellGate` holds a signal in both cases.  One that arrives between an objective's return
and the next one's start (the tell, the callbacks, the next ask) is raised when the next trial
starts (that trial ends "interrupted") or, when the study ends first, as the block ends.  One that
arrives inside a storage call is raised as soon as the call has returned: a timer thread sends it
again every few milliseconds until it lands outside (SIGALRM is left to others: pytest-timeout
uses it).  Anywhere else during training a signal acts at once, and so does a second one while
the first is held (a storage call that hangs on a server that is down can still be left).  A
signal the process ignores (a `nohup` or `&` job's SIGINT) stays ignored.

One raised inside a finalizer (``__del__``, a weakref callback, run when the garbage collector
happens to) is swallowed by Python ("Exception ignored in ..."), and the study went on as if never
interrupted (1 run in 80).  The gate sees it through ``sys.unraisablehook`` and sends it again.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["TellGate", "held", "in_storage_call", "tell_gate"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: the modules of a storage call: Optuna's storages and the database and server clients under them
_STORAGE_MODULES = ("optuna.storages", "sqlalchemy", "sqlite3", "psycopg", "psycopg2", "pymysql", "redis", "grpc")
RETRY_S = 0.005  # how soon a signal held inside a storage call is looked at again


def in_storage_call(frame: FrameType | None, also: Any = None) -> bool:
    """Whether ``frame`` (the one a signal interrupted) runs inside a storage call (or inside the
    function whose code object is ``also``)."""
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if frame.f_code is also or any(name == m or name.startswith(m + ".") for m in _STORAGE_MODULES):
            return True
        frame = frame.f_back
    return False


class TellGate:
    """``close()`` when the objective returns, ``open()`` when the next one starts: a signal in
    between is held and raised by ``open()``; one inside a storage call is held until it returns."""

    def __init__(self, previous: dict[Any, Any]) -> None:
        self.previous = previous
        self.closed = False
        self.held: int | None = None
        self.retry: threading.Timer | None = None
        self.raised: int | None = None  # the last signal raised, sent again if a finalizer swallowed it
        self.resent: int | None = None  # a signal the gate sent itself (not a second press)

    def handle(self, signum: int, frame: FrameType | None) -> None:
        again, self.resent = self.resent == signum, None
        if self.held is not None and not again:  # pressed twice: act now
            self.held = None
            self._raise(signum, frame)
        elif self.closed:
            self.held = signum
        elif in_storage_call(frame, also=TellGate.unraisable.__code__):
            self.held = signum  # (this gate's own hook runs where an interrupt is swallowed too)
            self._send_again()
        else:
            self.held = None
            self._raise(signum, frame)

    def _send_again(self) -> None:
        """In RETRY_S, send the held signal to this process again (unless the gate closed or
        raised it meanwhile): ``handle`` then looks at where it lands.  Not on Windows (no
        ``pthread_kill``): there it waits for the next trial."""
        if not hasattr(signal, "pthread_kill") or (self.retry is not None and self.retry.is_alive()):
            return

        def again() -> None:
            if self.held is not None and not self.closed:
                self.resent = self.held
                signal.pthread_kill(threading.main_thread().ident or 0, self.held)

        self.retry = threading.Timer(RETRY_S, again)
        self.retry.daemon = True
        self.retry.start()

    def unraisable(self, hook: Any, info: Any) -> None:
        """``sys.unraisablehook``: an interrupt a finalizer swallowed is held and sent again."""
        if info.exc_type is not None and issubclass(info.exc_type, KeyboardInterrupt) and self.raised is not None:
            self.held = self.raised
            self._send_again()
        else:
            hook(info)

    def _raise(self, signum: int, frame: FrameType | None) -> None:
        self.raised = signum
        handler = self.previous.get(signum)
        if callable(handler):
            handler(signum, frame)  # KeyboardInterrupt, or the CLI's Terminated
        raise KeyboardInterrupt

    def close(self) -> None:
        self.closed = True

    def open(self) -> None:
        self.closed = False
        if self.held is not None:
            held, self.held = self.held, None
            self._raise(held, None)


_active: TellGate | None = None  # the gate of the block running now


@contextmanager
def held() -> Iterator[None]:
    """A block that a signal does not interrupt: held until it ends, then raised (packs ask and
    tell their trials in one).  Nothing changes outside a :func:`tell_gate` block."""
    gate = _active
    if gate is None or gate.closed:
        yield
        return
    gate.close()
    try:
        yield
    finally:
        gate.open()


@contextmanager
def tell_gate() -> Iterator[TellGate | None]:
    """A :class:`TellGate` for this block (None off the main thread, where signals cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    previous = {s: h for s in _SIGNALS if (h := signal.getsignal(s)) is not signal.SIG_IGN}
    gate = TellGate(previous)
    for s in previous:
        signal.signal(s, gate.handle)
    hook = sys.unraisablehook
    sys.unraisablehook = lambda info: gate.unraisable(hook, info)
    global _active
    outer, _active = _active, gate
    try:
        yield gate
    finally:
        _active = outer
        sys.unraisablehook = hook
        for s, handler in previous.items():
            signal.signal(s, handler)
        if gate.retry is not None:
            gate.retry.cancel()
    gate.open()  # the study ended with a signal still held: raise it now
