"""SIGTERM and SIGINT end the job's run KILLED, never RUNNING; the process then exits 128 + N."""

import signal
import threading
from contextlib import contextmanager

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(SystemExit):
    """Raised in the main thread when SIGTERM or SIGINT arrives; its code is 128 + signal.
    A job that it stops sets `run`: the future of the run it ended KILLED."""

    run = None

    def __str__(self) -> str:
        return f"{signal.Signals(self.code - 128).name} received (exit code {self.code})"


class _Guard:
    def __init__(self) -> None:
        self.raising = False
        self.received = None

    def handle(self, signum, frame) -> None:
        # Kept even when raised: Python runs a handler wherever the main thread is, a finaliser
        # run by gc.collect() included, and an exception raised in a finaliser is only printed.
        self.received = signum
        if self.raising:
            raise Interrupted(128 + signum)

    def take(self):
        signum, self.received = self.received, None
        return None if signum is None else Interrupted(128 + signum)


_guard = _Guard()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def interruptible():
    """Within the block SIGTERM/SIGINT are kept, never lost, and raise Interrupted only inside
    `signals_raise()`: what runs outside it (creating and ending a run) is never cut short.
    Main thread only; elsewhere a no-op."""
    if not _main_thread():
        yield
        return
    outer_raising, _guard.raising, _guard.received = _guard.raising, False, None
    previous = {s: signal.signal(s, _guard.handle) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _guard.raising = outer_raising


@contextmanager
def signals_raise():
    """Within the block a signal raises Interrupted at once, as does one kept before it began."""
    if not _main_thread():
        yield
        return
    if _guard.received is not None:  # kept, until signal_received() takes it
        raise Interrupted(128 + _guard.received)
    outer, _guard.raising = _guard.raising, True
    try:
        yield
    finally:
        _guard.raising = outer


def signal_received():
    """The Interrupted for a signal kept since the last call, whether it was raised or not."""
    return _guard.take()
