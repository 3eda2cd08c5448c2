"""The job's end of its recording process: `submit(request)` returns a Future at once."""

import atexit
import collections
import os
import pickle
import subprocess
import sys
import threading
import uuid
from concurrent.futures import Future


class RecordingProcessGone(RuntimeError):
    """The recording process ended before it answered."""


class RecordingProcess:
    """A recording process and the futures of what it was asked, answered in order."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "runner.recording.process", str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        self._pending = collections.deque()
        self._lock = threading.Lock()
        self._gone = None
        self._asked = False
        threading.Thread(target=self._answers, name="recorder-answers", daemon=True).start()

    def new_key(self) -> str:
        """A key that names a run in requests before its id is known; unique anywhere, so
        that the run carries it and a request sent again (from a journal) finds it."""
        return uuid.uuid4().hex

    def submit(self, request) -> Future:
        future = Future()
        with self._lock:
            if self._gone is None:
                try:
                    pickle.dump(request, self.process.stdin)
                    self.process.stdin.flush()
                    self._asked = True
                    self._pending.append(future)
                    return future
                except OSError:
                    self._gone = self._gone_error()
            future.set_exception(self._gone)
        return future

    def alive(self) -> bool:
        return self._gone is None and self.process.poll() is None

    def _answers(self) -> None:
        """Resolve each future as its answer comes; when the process ends, fail the rest."""
        while True:
            try:
                ok, value = pickle.load(self.process.stdout)
            except (EOFError, OSError, pickle.UnpicklingError):
                break
            with self._lock:
                future = self._pending.popleft()
            future.set_result(value) if ok else future.set_exception(value)
        with self._lock:
            self._gone = self._gone or self._gone_error()
            while self._pending:
                self._pending.popleft().set_exception(self._gone)

    def _gone_error(self) -> RecordingProcessGone:
        try:
            code = self.process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            code = None
        return RecordingProcessGone(f"the recording process {self.process.pid} ended "
                            f"({'exit code ' + str(code) if code is not None else 'pipe closed'})")

    def close(self, timeout: float = 60.0, wait: bool = False) -> None:
        """Close the pipe and wait for the child to finish what it was asked, if anything;
        `wait`: until it has ended, its journal and the folders made for it removed (a
        command refused leaves no file behind)."""
        if not self._asked:  # asked nothing (a sweep refused): no need to wait for its imports
            self.process.kill()
        try:
            self.process.stdin.close()
        except OSError:
            pass
        with self._lock:
            if not self._pending and not wait:
                return  # every answer is in: the child ends by itself
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_process = None


def recording_process() -> RecordingProcess:
    """This process's recording process, started on first use (in each worker of a launcher too); one
    that has ended (killed by the OOM killer, say) is replaced for the requests to come."""
    global _process
    if _process is None or not _process.alive():
        _process = RecordingProcess()
        atexit.register(_process.close)
    return _process
