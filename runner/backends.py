"""Keras's backend for a job: this process's own, or a worker process started for it.

Keras fixes its backend when it is first imported (`KERAS_BACKEND`). A job runs in this
process when this process's Keras uses the job's backend, or is not imported yet (it is then
imported on that backend); any other job runs in a worker process of its backend, started on
first use and kept for this process's later jobs of that backend. A worker imports only its
own backend: a JAX or PyTorch job never imports TensorFlow."""

import atexit
import functools
import os
import pickle
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Optional

from runner.console import quiet_libraries, tensorflow_logs_read
from runner.device import gpu_count
from runner.private_names import masked_steps_output_zeros_on_jax
from runner.stderr_filter import has_nvidia_gpu

NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}


def prepare(backend: str, verbose: bool, gpu_memory_growth: bool = True) -> None:
    """What must be set before Keras is imported on `backend` in this process. On JAX or
    PyTorch, TensorFlow is not to be imported at all: Keras would import it where it is
    installed (`Bidirectional` checks for TensorFlow's shapes as it serializes its layer), so
    `import tensorflow` fails here (Python's import system: a None in `sys.modules`), and
    Keras, finding no TensorFlow, goes on without it."""
    from runner.session import prepare_backend_environment

    quiet_libraries(verbose)
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = backend
        prepare_backend_environment(backend, gpu_memory_growth)
        if backend != "tensorflow":
            sys.modules.setdefault("tensorflow", None)


@functools.lru_cache(maxsize=None)
def start_keras(backend: str, verbose: bool, gpu_memory_growth: bool = True) -> Optional[str]:
    """Import Keras on `backend` and let it find its devices, quietly (see
    `tensorflow_logs_read`); once per process, the first backend asked for being the process's
    own (runner.backends). Returns why the backend does not use the NVIDIA GPU this machine
    has (a job then fails with it), or None."""
    prepare(backend, verbose, gpu_memory_growth)
    said = []
    with tensorflow_logs_read(verbose, said):
        import keras

        if keras.backend.backend() == "jax":
            masked_steps_output_zeros_on_jax()
        gpus = gpu_count(backend)
    if gpus or not has_nvidia_gpu():
        return None
    why = "; ".join(said[-3:]) or "it said nothing"
    install = {"tensorflow": "install the gpu extra (pip install -e '.[gpu]')",
               "jax": "install JAX's CUDA build (docs/scaling.md)",
               "torch": "install PyTorch's CUDA build (docs/scaling.md)"}[backend]
    return (f"device: this machine has an NVIDIA GPU but {NAMES[backend]} found none ({why}); "
            f"{install}, or set CUDA_VISIBLE_DEVICES= to run on the CPU")


def runs_here(backend: str) -> bool:
    """Whether a job on `backend` runs in this process: its Keras is on that backend, or is
    not imported yet."""
    if "keras" not in sys.modules:
        return True
    import keras  # noqa: F811 - imported, or being imported by another thread: wait for it

    return keras.backend.backend() == backend


class WorkerGone(RuntimeError):
    """A backend's worker process ended while it ran a job (killed, or out of memory)."""


class Worker:
    """A process of its own for one backend's jobs: a job's spec in, its JobResult out, over a
    pipe each way (pickled). A plain interpreter, whatever process starts it: Hydra's basic
    launcher, a joblib (loky), Ray or Slurm worker."""

    def __init__(self, backend: str, verbose: bool) -> None:
        self.backend = backend
        jobs_read, jobs_written = os.pipe()
        results_read, results_written = os.pipe()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "runner.backends", str(jobs_read), str(results_written),
             backend, str(verbose).lower()], pass_fds=(jobs_read, results_written))
        os.close(jobs_read)
        os.close(results_written)
        self._jobs = os.fdopen(jobs_written, "wb")
        self._results = os.fdopen(results_read, "rb")
        self._lock = threading.Lock()

    def run_experiment(self, spec, artifact_dir: Path):
        """The job's JobResult, as runner.experiment.run_experiment returns it, from the
        worker; WorkerGone where the worker ended before it answered."""
        with self._lock:
            try:
                pickle.dump((spec, artifact_dir), self._jobs)
                self._jobs.flush()
                return pickle.load(self._results)
            except (EOFError, OSError, pickle.UnpicklingError) as error:
                code = self.process.wait(timeout=10)
                _workers.pop(self.backend, None)  # the next job starts a new one
                raise WorkerGone(f"backend {self.backend}: its worker process ended (exit code "
                                 f"{code}) before the job did") from error

    def stop(self) -> None:
        """End the worker now: at this process's exit, its job may be one cut short."""
        self.process.kill()
        self.process.wait()


_workers: dict = {}
_starting = threading.Lock()


def worker(backend: str, verbose: bool) -> Worker:
    """This process's worker for `backend`, started on first use."""
    with _starting:
        if not _workers:
            atexit.register(_stop_workers)
        if backend not in _workers:
            _workers[backend] = Worker(backend, verbose)
        return _workers[backend]


def _stop_workers() -> None:
    for running in list(_workers.values()):
        running.stop()


def _serve(jobs_fd: int, results_fd: int, backend: str, verbose: bool) -> None:
    """A worker's life: jobs one at a time until the pipe closes (its job process ended). A
    signal is the job process's to act on (a Ctrl-C reaches both); it ends this one."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    quiet_libraries(verbose)  # Keras is imported with the first job (start_keras)
    with os.fdopen(jobs_fd, "rb") as jobs, os.fdopen(results_fd, "wb") as results:
        while True:
            try:
                spec, artifact_dir = pickle.load(jobs)
            except EOFError:
                return
            pickle.dump(_experiment(spec, artifact_dir), results)
            results.flush()


def _experiment(spec, artifact_dir: Path):
    import dataclasses

    from runner.errors import DeviceError
    from runner.experiment import planned_result, run_experiment
    from runner.result import Failure

    try:
        unused_gpu = start_keras(spec.config["backend"], spec.config["verbose"],
                                 spec.config["gpu_memory_growth"])
        if unused_gpu is not None:
            raise DeviceError(unused_gpu)
    except Exception as error:  # noqa: BLE001 - the backend cannot start: the job fails with why
        return dataclasses.replace(planned_result(spec, artifact_dir), error=Failure.of(error))
    return run_experiment(spec, artifact_dir)


def start_keras_aside(backend: str, verbose: bool, gpu_memory_growth: bool) -> threading.Thread:
    """Keras's import on `backend` in a thread of its own (joined before the first job)."""
    def start() -> None:
        try:
            start_keras(backend, verbose, gpu_memory_growth)
        except Exception:  # noqa: BLE001 - the first job starts it again, and fails with why
            pass

    thread = threading.Thread(target=start, daemon=True, name="start-keras")
    thread.start()
    return thread


def first_backend(cells: list, default: str) -> str:
    """The backend of a grid's first cell: its `backend=` override, else the config's."""
    for override in cells[0] if cells else ():
        key, _, value = override.partition("=")
        if key.lstrip("+~") == "backend" and value in NAMES:
            return value
    return default


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4] == "true")
