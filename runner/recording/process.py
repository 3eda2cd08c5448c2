"""The recording process: a child of the job's process that applies its requests, in order.

MLflow's import and opening its store take a second or two; here they overlap TensorFlow's
import in the job, and MLflow's memory stays out of the job's process. The child ignores SIGINT
and SIGTERM (Ctrl-C reaches the whole process group): the job decides how its run ends and
says so. It applies every request it was sent, and exits when the pipe closes, also when the
job was killed -9; the next start on the host then reaps the run left RUNNING.

One thread reads the requests and writes each to the journal (recording/journal.py) as it
comes; another applies them in order and answers (recording/delivery.py), trying a tracking
server that went away again for as long as `tracking.retry_minutes` says. The job's writes
into the pipe never wait for the store.

    python -m runner.recording.process OWNER_PID     (started by recording/client.py)
"""

import logging
import os
import pickle
import queue
import signal
import sys
import threading
from pathlib import Path

from runner.recording import requests

# On a machine with few cores the job's process is the critical path: it waits for nothing
# recorded until its sweep ends, so the recording process takes the cores it leaves
NICER = 10

REQUESTS = (requests.CreateParent, requests.StartRun, requests.FinishRun, requests.CloseSweep,
            requests.FindSweep, requests.ReopenSweep)
# MLflow's usage telemetry, unless the user asks for it: when its background thread gives up
# (no network, or telemetry off for this version) it deletes a variable of os.environ while a
# request of ours reads os.environ (requests' proxy lookup): that request then fails with
# KeyError '_MLFLOW_TELEMETRY_SESSION_ID'. It lost 2 of 64 writes under load (store_load.py).
# And on a tracking server MLflow prints "View run ... at: <address>" as each run ends (one
# more request each, and the address with any `user:password@` written into tracking.uri):
# the runner prints its own addresses, without credentials.
MLFLOW_ENVIRONMENT = {"MLFLOW_DISABLE_TELEMETRY": "true",
                      "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}


def before_mlflow() -> None:
    """The environment MLflow is imported into: read once, by its import."""
    for name, value in MLFLOW_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


class _SaidByTheRunner(logging.Filter):
    """MLflow logs each database error of a sqlite store with its traceback before it raises
    it. The runner waits out a locked store, and says a full or read-only one in its own line
    (recording/local_faults.py): those logs are dropped, every other one is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        from runner.recording.local_faults import cause_of
        from runner.recording.store import locked

        error = record.exc_info[1] if record.exc_info else None
        return error is None or not (cause_of(error) is not None or locked(error))


def quiet_store_errors() -> None:
    """With MLflow's logs at WARNING or above (the runner's default, unless verbose=true),
    the store errors the runner says itself are not said twice, with a traceback."""
    if logging.getLogger("mlflow").getEffectiveLevel() >= logging.WARNING:
        logging.getLogger("mlflow.store.db.utils").addFilter(_SaidByTheRunner())


class OpenStores:
    """What the recording process holds: a store per tracking target, the runs it started."""

    def __init__(self, owner: int) -> None:
        self.owner = owner  # the job's process: its runs are orphans once it is gone
        self._stores = {}
        self._runs = {}  # StartRun.key -> the run's RunRef, or why it was never created
        self._tried = set()  # ("start" | "finish", key) applied once already, or replayed

    def store(self, tracking: requests.Tracking):
        from runner.recording.sweeps import SweepStore

        if tracking.store_key not in self._stores:
            self._stores[tracking.store_key] = SweepStore(tracking, self.owner)
        return self._stores[tracking.store_key]

    def exists(self, tracking: requests.Tracking) -> bool:
        """Whether the store is there already: opening a sqlite store makes it."""
        prefix = "sqlite:///"
        return (tracking.store_key in self._stores or not tracking.uri.startswith(prefix)
                or Path(tracking.uri[len(prefix):]).is_file())

    def tried_before(self, what: tuple) -> bool:
        """Whether `what` was applied before (and failed, or its process died since)."""
        seen = what in self._tried
        self._tried.add(what)
        return seen

    def start(self, key: str, tracking: requests.Tracking, create, waits: bool):
        """The run `create()` makes, or, when this start was tried before, the run that try
        made already (its answer lost with the connection). `waits`: a start that is tried
        again while its server is away, rather than refused."""
        if self.tried_before(("start", key)):
            found = self.store(tracking).find_run(key)
            if found is not None:
                self._runs[key] = found
                return found
        try:
            self._runs[key] = create()
        except BaseException as error:
            from runner.recording.local_faults import worth_waiting_for

            if not (waits and worth_waiting_for(error)):
                self._runs[key] = error  # refused: what ends the run fails the same way
            raise
        return self._runs[key]

    def never_created(self, key: str) -> bool:
        """The run's start was refused (not merely waiting for its server)."""
        return isinstance(self._runs.get(key), BaseException)

    def run_of(self, key: str, tracking: requests.Tracking):
        run = self._runs.get(key)
        if isinstance(run, BaseException):
            raise run  # the run was never created: what ends it fails the same way
        if run is None:  # started by a process that is gone, whose journal this one sends
            run = self.store(tracking).find_run(key)
            if run is None:
                raise LookupError(f"no run was started under key {key}")
            self._runs[key] = run
        return run

    def learn(self, entries: list) -> None:
        """What another process's journal says of its runs: which were tried (a replay looks
        for them first), and the ids of those it made."""
        for entry in entries:
            request = entry.request
            if isinstance(request, requests.StartRun):
                self._tried.add(("start", request.key))
                if entry.run_id:
                    self._runs[request.key] = requests.RunRef(entry.run_id, "")
            elif isinstance(request, requests.FinishRun):
                self._tried.add(("finish", request.key))


def serve(owner: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.nice(NICER)  # the job's TensorFlow import, beside this one's MLflow import, goes first
    before_mlflow()
    from mlflow import MlflowClient  # noqa: F401  (before the first request: why this process is)

    quiet_store_errors()

    from runner.recording.delivery import Delivery

    incoming = os.fdopen(os.dup(0), "rb")
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the answers
    asked = queue.Queue()
    delivery = Delivery(OpenStores(owner), backlog=asked.qsize)
    applier = threading.Thread(target=_apply_in_order, args=(asked, delivery, answers),
                               name="apply-in-order")
    applier.start()
    while True:
        try:
            request = pickle.load(incoming)
        except EOFError:
            break
        if not isinstance(request, REQUESTS):
            asked.put((request, None))
            continue
        asked.put((request, delivery.journal(request)))  # on disk before it is applied
    asked.put(None)
    applier.join()  # every request applied and answered, or left waiting in the journal
    delivery.close()
    answers.close()
    os._exit(0)  # no teardown of MLflow's modules


def _apply_in_order(asked: queue.Queue, delivery, answers) -> None:
    while (item := asked.get()) is not None:
        request, ticket = item
        if not isinstance(request, REQUESTS):
            answer = (False, TypeError(f"not a recording request: {type(request).__name__}"))
        else:
            answer = delivery.answer(request, ticket)
        if not answer[0]:
            answer = (False, _picklable(answer[1]))  # sent back: the job's future raises it
        try:
            pickle.dump(answer, answers)
            answers.flush()
        except OSError:
            pass  # the job is gone: what it asked is applied all the same
        if "matplotlib.figure" not in sys.modules:  # the pictures' library, after the first
            from matplotlib.figure import Figure  # noqa: F401  answer: a resume need not wait


def _picklable(error: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")


if __name__ == "__main__":
    serve(int(sys.argv[1]))
