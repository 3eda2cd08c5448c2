"""SIGTERM and SIGINT end the job's run KILLED, never RUNNING; the process then exits 128 + N."""

import signal
import threading
from contextlib import contextmanager

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(SystemExit):
    """Raised in the main thread when SIGTERM or SIGINT arrives; its code is 128 + signal."""

    def __str__(self) -> str:
        return f"{signal.Signals(self.code - 128).name} received (exit code {self.code})"


class _Guard:
    def __init__(self) -> None:
        self.deferring = False
        self.pending = None

    def handle(self, signum, frame) -> None:
        if self.deferring:
            self.pending = signum  # raised once the record is written
            return
        raise Interrupted(128 + signum)


_guard = _Guard()


@contextmanager
def interruptible():
    """Within the block, SIGTERM/SIGINT raise Interrupted (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _guard.handle) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextmanager
def signals_deferred():
    """Finish what must not be cut short (ending a run), then act on a signal that came meanwhile."""
    outer = _guard.deferring
    _guard.deferring = True
    try:
        yield
    finally:
        _guard.deferring = outer
        if not outer and _guard.pending is not None:
            signum, _guard.pending = _guard.pending, None
            raise Interrupted(128 + signum)
