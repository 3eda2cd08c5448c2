"""The recording process: a child of the job's process that applies its requests, in order.

MLflow's import and opening its store take a second or two; here they overlap TensorFlow's
import in the job, and MLflow's memory stays out of the job's process. The child ignores SIGINT
and SIGTERM (Ctrl-C reaches the whole process group): the job decides how its run ends and
says so. It applies every request it was sent, and exits when the pipe closes, also when the
job was killed -9; the next start on the host then reaps the run left RUNNING.

    python -m runner.recording.process OWNER_PID     (started by recording/client.py)
"""

import os
import pickle
import signal
import sys
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


class OpenStores:
    """What the recording process holds: a store per tracking target, the runs it started."""

    def __init__(self, owner: int) -> None:
        self.owner = owner  # the job's process: its runs are orphans once it is gone
        self._stores = {}
        self._runs = {}  # StartRun.key -> the run's RunRef, or why it was never created

    def store(self, tracking: requests.Tracking):
        from runner.recording.sweeps import SweepStore

        if tracking not in self._stores:
            self._stores[tracking] = SweepStore(tracking, self.owner)
        return self._stores[tracking]

    def exists(self, tracking: requests.Tracking) -> bool:
        """Whether the store is there already: opening a sqlite store makes it."""
        prefix = "sqlite:///"
        return (tracking in self._stores or not tracking.uri.startswith(prefix)
                or Path(tracking.uri[len(prefix):]).is_file())

    def start(self, key: int, create):
        try:
            self._runs[key] = create()
        except BaseException as error:
            self._runs[key] = error
            raise
        return self._runs[key]

    def run_of(self, key: int):
        run = self._runs.pop(key, None)
        if isinstance(run, BaseException):
            raise run  # the run was never created: what ends it fails the same way
        if run is None:
            raise LookupError(f"no run was started under key {key}")
        return run


def serve(owner: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.nice(NICER)  # the job's TensorFlow import, beside this one's MLflow import, goes first
    before_mlflow()
    from mlflow import MlflowClient  # noqa: F401  (before the first request: why this process is)

    incoming = os.fdopen(os.dup(0), "rb")
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the answers
    stores = OpenStores(owner)
    while True:
        try:
            request = pickle.load(incoming)
        except EOFError:  # every request applied and answered: no teardown of MLflow's modules
            answers.close()
            os._exit(0)
        try:
            if not isinstance(request, REQUESTS):
                raise TypeError(f"not a recording request: {type(request).__name__}")
            answer = (True, request.apply(stores))
        except BaseException as error:  # sent back: the job's future raises it
            answer = (False, _picklable(error))
        pickle.dump(answer, answers)
        answers.flush()
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
