"""Ctrl+C and SIGTERM wait while Optuna records a trial.

Optuna's ``study.optimize`` tells a trial's outcome to the storage after the objective returns;
an interrupt landing inside that tell escapes its ``except Exception`` and its ``finally`` then
reads a variable the tell never set: the process died with an ``UnboundLocalError`` traceback
and exit code 1 instead of 130/143, the trial half-told.  :class:`TellGate` holds a signal that
arrives between one objective's return and the next one's start (the tell, the callbacks, the
next ask) and raises it when the next trial starts (that trial ends "interrupted") or, when the
study ends first, as the block ends; during training a signal acts at once, as before.  A signal
the process ignores (a `nohup` or `&` job's SIGINT) stays ignored.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["TellGate", "tell_gate"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TellGate:
    """``close()`` when the objective returns, ``open()`` when the next one starts: a signal in
    between is held and raised by ``open()``."""

    def __init__(self, previous: dict[Any, Any]) -> None:
        self.previous = previous
        self.closed = False
        self.held: tuple[int, FrameType | None] | None = None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.closed:
            self.held = (signum, frame)
        else:
            self._raise(signum, frame)

    def _raise(self, signum: int, frame: FrameType | None) -> None:
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
            self._raise(*held)


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
    try:
        yield gate
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    gate.open()  # the study ended with a signal still held: raise it now
