"""SIGTERM and SIGINT end the job's run KILLED, never RUNNING; the process then exits 128 + N."""

import signal
import threading
from concurrent.futures import Future
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


def call_while_waiting(function, *args):
    """`function(*args)` in a daemon thread while the main thread waits for it, so a signal raises
    Interrupted at once, even while the function is inside one long TensorFlow call (Python runs
    a handler only in the main thread, between two of its bytecodes). On a signal the thread is
    left running: being a daemon, it does not hold the process's exit.

    The wait wakes every 0.1 s: a signal delivered to one of TensorFlow's threads does not
    interrupt the main thread's wait, and the handler runs when the wait returns."""
    future = Future()

    def work() -> None:
        try:
            future.set_result(function(*args))
        except BaseException as error:  # re-raised in the caller's thread
            future.set_exception(error)

    threading.Thread(target=work, name="runner-experiment", daemon=True).start()
    try:
        while True:
            try:
                return future.result(timeout=0.1)
            except TimeoutError:
                continue
    except Interrupted:
        _yield_cpu()
        raise


def _yield_cpu() -> None:
    """Lower every other thread of this process to the lowest priority: the call left running
    keeps TensorFlow's threads busy on every core, and the recording process must end the run
    KILLED before this process exits (Linux's nice is per thread; elsewhere nothing changes)."""
    import os

    me = threading.get_native_id()
    try:
        threads = [int(tid) for tid in os.listdir("/proc/self/task") if int(tid) != me]
    except OSError:
        return
    for tid in threads:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, 19)
        except OSError:  # ended meanwhile
            pass
