"""Every MLflow call of a process, made by a child process of its own.

MLflow's import and opening its store take a second or two; in the child they overlap
TensorFlow's import in the job, and MLflow's memory stays out of the job's process. Calls go in
order over a pipe and are answered in order, so nothing is left unwritten: a job alone waits
for its run to be ended before it returns; a sweep in one process lets each job go on while
its run is recorded, and waits for all of them before it closes its parent.

The child ignores SIGINT and SIGTERM (Ctrl-C reaches the whole process group): the job decides
how its run ends and says so. It exits when the pipe closes, also when the job was killed -9;
the next start on the host then reaps the run left RUNNING.
"""

import atexit
import os
import pickle
import signal
import subprocess
import sys
from typing import Any

# What the child may be asked to do: names, never code (`runner.tracking`'s functions).
CALLS = ("create_parent", "start_job", "finish_job", "finish_sweep")
# The job's environment that decides the store and the run's parent, sent with every call.
ENV_PREFIXES = ("MLFLOW_", "RUNNER_PARENT_RUN_ID")


class Answer:
    """Stands, in a later call's arguments, for the answer to an earlier call (a run's id):
    the job goes on without waiting for it, the recorder puts it in."""

    def __init__(self, ticket: int) -> None:
        self.ticket = ticket


class RecorderGone(RuntimeError):
    """The recording process ended before it answered."""


def _store_env() -> dict:
    return {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}


def _plain(value: Any) -> Any:
    """A DictConfig becomes a resolved one (its `${...}` need this process's Hydra state)."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(value, DictConfig):
        return OmegaConf.create(OmegaConf.to_container(value, resolve=True))
    return value


class Recorder:
    """The job's end of the pipe: `submit` returns at once, `result` waits for that answer."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "runner.recorder", str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        self.sent = 0
        self.answered = {}
        self.received = 0
        # An in-process sweep lets its jobs go on while their runs are recorded (`defer`), and
        # settles them all before it closes the parent.
        self.deferring = False
        self.deferred = []
        self.lost = {}  # what an earlier recorder of this process had not recorded when it ended

    def submit(self, call: str, *args) -> int:
        if call not in CALLS:
            raise ValueError(f"unknown recorder call {call!r}; allowed: {', '.join(CALLS)}")
        from runner.tracking import Failure

        args = tuple(Failure.of(a) if isinstance(a, BaseException) else _plain(a) for a in args)
        try:
            pickle.dump((call, args, _store_env()), self.process.stdin)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as error:
            raise self._gone() from error
        self.sent += 1
        return self.sent

    def result(self, ticket: int) -> Any:
        while self.received < ticket:
            try:
                self.answered[self.received + 1] = pickle.load(self.process.stdout)
            except (EOFError, OSError, pickle.UnpicklingError) as error:
                raise self._gone() from error
            self.received += 1
        ok, value = self.answered.pop(ticket)
        if not ok:
            raise value
        return value

    def call(self, call: str, *args) -> Any:
        return self.result(self.submit(call, *args))

    def later(self, ticket: int) -> Answer:
        return Answer(ticket)

    def defer(self, key: Any, call: str, *args) -> None:
        """Ask now; whether it worked is known at `settle`, under `key`."""
        self.deferred.append((key, self.submit(call, *args)))

    def settle(self) -> dict:
        """Wait for every deferred call: {key: the error} of those that failed."""
        failed, self.lost = self.lost, {}
        for key, ticket in self.deferred:
            try:
                self.result(ticket)
            except Exception as error:
                failed[key] = error
        self.deferred = []
        return failed

    def _gone(self) -> RecorderGone:
        code = self.process.poll()
        return RecorderGone(f"the recording process {self.process.pid} ended "
                            f"({'exit code ' + str(code) if code is not None else 'pipe closed'})")

    def close(self, timeout: float = 60.0) -> None:
        """Close the pipe and wait for the child to finish what it was asked."""
        if not self.sent:  # asked nothing (a sweep refused): no need to wait for its imports
            self.process.kill()
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_recorder = None


def recorder() -> Recorder:
    """This process's recorder, started on first use (in each worker of a launcher too)."""
    global _recorder
    if _recorder is None or _recorder.process.poll() is not None:
        ended, _recorder = _recorder, Recorder()
        atexit.register(_recorder.close)
        if ended is not None:  # what it had still to record is lost: the sweep will say so
            _recorder.deferring = ended.deferring
            _recorder.lost = ended.settle()
    return _recorder


def _serve(owner: int) -> None:
    from runner import tracking

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from mlflow import MlflowClient  # noqa: F401  (before the first call: why this process is)
    from matplotlib.figure import Figure  # noqa: F401  (and the pictures)

    tracking.record_for(owner)
    requests = os.fdopen(os.dup(0), "rb")
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the answers
    ids = {}  # ticket -> (ok, run id) of the calls that create runs, for later Answers
    ticket = 0
    while True:
        try:
            call, args, env = pickle.load(requests)
        except EOFError:
            return
        ticket += 1
        for key in [k for k in os.environ if k.startswith(ENV_PREFIXES)]:
            del os.environ[key]
        os.environ.update(env)
        try:
            if call not in CALLS:
                raise ValueError(f"unknown recorder call {call!r}; allowed: {', '.join(CALLS)}")
            args = [_answer(ids, a) if isinstance(a, Answer) else a for a in args]
            answer = (True, getattr(tracking, call)(*args))
        except BaseException as error:  # sent back, raised in the job
            answer = (False, _picklable(error))
        if call in ("create_parent", "start_job"):
            ids[ticket] = answer
        pickle.dump(answer, answers)
        answers.flush()


def _answer(ids: dict, answer: Answer):
    ok, value = ids.pop(answer.ticket)
    if not ok:
        raise value  # the run was never created: this call fails the same way
    return value


def _picklable(error: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")


if __name__ == "__main__":
    from runner.recorder import _serve as serve  # this module by its name, as the job pickles

    serve(int(sys.argv[1]))
