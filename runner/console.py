"""A quiet console: the runner's own lines, not the libraries' start-up chatter.

`verbose=true`, or the libraries' own variables set by the user (TF_CPP_MIN_LOG_LEVEL,
MLFLOW_LOGGING_LEVEL), bring their logs back. What TensorFlow writes while it starts is read
through a filter process on its way to the terminal: the lines known to be noise on every
start are dropped, and every other line is written out as it comes, so a real failure is never
hidden, not even the last line of a process that aborts."""

import atexit
import contextlib
import io
import itertools
import json
import os
import select
import subprocess
import sys
import threading
import time
from typing import Optional

from runner.stderr_filter import ABANDONED, SYNC


def quiet_libraries(verbose: bool) -> None:
    """Library log levels for this process and the ones it starts, unless the user set them."""
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's warnings and errors stay
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


class StderrFilter:
    """A filter process (`runner.stderr_filter`) that writes to this process's stderr as it is
    now, and this process's end of the pipe it reads. It ends when the pipe's last writer has
    gone: `close()`, or this process's exit however it comes (even `kill -9` or `abort()`)."""

    def __init__(self) -> None:
        lines_read, self._lines = os.pipe()  # neither end is inherited by other children
        self._answers, answers_written = os.pipe()
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stderr_filter.py")
        # Its own session: a Ctrl-C meant for the job does not end the filter before the job
        # has said its last words
        self.process = subprocess.Popen([sys.executable, "-I", "-S", script], stdin=lines_read,
                                        stdout=answers_written, close_fds=True,
                                        start_new_session=True)
        os.close(lines_read)
        os.close(answers_written)
        self.serves = _stderr_now()
        pipe = os.fstat(self._lines)
        self.within = (pipe.st_dev, pipe.st_ino, *self.serves[2:])  # stderr within a block
        self._numbers = itertools.count(1)
        self._buffer = b""

    def alive(self) -> bool:
        return self._lines is not None and self.process.poll() is None

    def redirect(self) -> None:
        """File descriptor 2 into the filter."""
        os.dup2(self._lines, 2)

    def kept(self, timeout: float = 10.0) -> list:
        """Wait until the filter has written out every line sent before now; the lines it
        kept since the last call (none if it does not answer within `timeout` seconds)."""
        number = str(next(self._numbers))
        if self._lines is None:  # closed
            return []
        try:  # the newline first ends a line left unfinished
            os.write(self._lines, b"\n" + SYNC + number.encode() + b"\n")
        except OSError:  # the filter has gone
            return []
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self._buffer:
                answer, self._buffer = self._buffer.split(b"\n", 1)
                answered, lines = json.loads(answer)
                if answered == number:  # not an answer that came too late for an earlier call
                    return lines
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._answers], [], [], remaining)[0]:
                return []
            chunk = os.read(self._answers, 65536)
            if not chunk:
                return []
            self._buffer += chunk

    def abandon(self) -> None:
        """TensorFlow's lines below FATAL dropped from now on (`computation_abandoned`)."""
        try:
            os.write(self._lines, b"\n" + ABANDONED)
        except (OSError, TypeError):  # gone, or closed
            pass

    def close(self, timeout: float = 2.0) -> None:
        """Close the pipe and wait for the filter to write its last lines and end; a filter
        whose pipe another process still holds (a child started within a filtered block)
        is left to end with it."""
        if self._lines is None:
            return
        os.close(self._lines)
        os.close(self._answers)
        self._lines = None
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    def forget(self) -> None:
        """In a child made by fork: close the parent's pipe here, so the filter still ends
        when the parent does; the child starts its own filter if it needs one."""
        if self._lines is not None:
            os.close(self._lines)
            os.close(self._answers)
            self._lines = None


def _stderr_now() -> tuple:
    """What this process's stderr is now, and what the filter's GPU question depends on."""
    status = os.fstat(2)
    return (status.st_dev, status.st_ino, os.environ.get("PATH"),
            os.environ.get("CUDA_VISIBLE_DEVICES"))


_filter: Optional[StderrFilter] = None
_filtering = threading.Lock()  # one filtered block at a time; a block inside another passes
_abandoned = threading.Event()  # a computation goes on in a daemon thread: computation_abandoned


def computation_abandoned() -> None:
    """A computation is left running in a daemon thread to the end of this process (a job
    stopped by a signal, runner.signals.call_while_waiting). From the end of the filtered block
    on, file descriptor 2 stays in the filter, which drops TensorFlow's lines below FATAL:
    what that computation says once it has been given up (an aborted rendezvous, a cancelled
    op) is caused by the stop, and would come after the job's last line. Python's lines and
    a fatal line still reach the terminal."""
    _abandoned.set()


def stderr_filter() -> StderrFilter:
    """This process's filter, started on first use; started again when the one there has
    ended, or when stderr has changed since it started (a test capturing it, say)."""
    global _filter
    if _filter is None or not _filter.alive() or _stderr_now() not in (
            _filter.serves, _filter.within):
        if _filter is not None:
            _filter.close()
        else:
            atexit.register(_close_filter)  # its last lines out before this process ends
        _filter = StderrFilter()
    return _filter


def _close_filter() -> None:
    """At exit: the filter ends now, unless a block still sends it lines (a daemon thread's,
    cut short by the exit); then it ends with this process, and the exit does not wait."""
    if _filter is not None and _filtering.acquire(blocking=False):
        _filter.close(timeout=0 if _abandoned.is_set() else 2.0)  # fd 2 still holds its pipe
        _filtering.release()


def _forget_after_fork() -> None:
    if _filter is not None:
        _filter.forget()


os.register_at_fork(after_in_child=_forget_after_fork)


@contextlib.contextmanager
def tensorflow_logs_read(verbose: bool, kept: Optional[list] = None):
    """Within the block, what is written to file descriptor 2 (TensorFlow's C++ logs) goes
    through the stderr filter (`runner.stderr_filter`): the known noise is dropped, every
    other line reaches the terminal as soon as it is written, even if the process then dies.
    Python's own stderr goes straight to the terminal. At the end, the lines shown are added
    to `kept`."""
    if verbose or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":  # the user asked for all
        yield
        return
    if not _filtering.acquire(blocking=False):  # within another filtered block
        yield
        return
    try:
        sys.stderr.flush()
        try:
            running = stderr_filter()
        except OSError:  # no process to be had (out of file descriptors, say): all lines shown
            yield
            return
        terminal = os.dup(2)
        python_stderr = sys.stderr
        sys.stderr = io.TextIOWrapper(os.fdopen(os.dup(terminal), "wb"), line_buffering=True)
        running.redirect()
        try:
            yield
        finally:
            sys.stderr.flush()
            if _abandoned.is_set():  # fd 2 stays in the filter, Python's stderr on the terminal
                running.abandon()
            else:
                os.dup2(terminal, 2)
                sys.stderr.close()
                sys.stderr = python_stderr
            os.close(terminal)
            lines = running.kept()  # every line written in the block is out by now
            if kept is not None:
                kept.extend(lines)
    finally:
        _filtering.release()

