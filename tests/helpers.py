"""What several test modules share: reading runs back, starting the CLI, finding processes."""

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
# A job long enough to be caught mid-way: about 10 s of LSTM on 2 cores
SLOW = ["model=lstm", "data.timesteps=4000", "data.batch_size=256", "model.units=64"]
# The notebook's eight cells and the output shape of each
SEED_TABLE = {
    "model=simple_rnn,return_sequences=false": "(4, 3)",
    "model=simple_rnn,return_sequences=true": "(4, 30, 3)",
    "model=lstm,return_sequences=false": "(4, 3)",
    "model=lstm,return_sequences=true": "(4, 30, 3)",
    "model=bilstm,return_sequences=false": "(4, 6)",
    "model=bilstm,return_sequences=true": "(4, 30, 6)",
    "model=lambda_lstm,return_sequences=false": "(4, 1)",
    "model=lambda_lstm,return_sequences=true": "(4, 30, 1)",
}
ARTIFACTS = {"config.yaml", "device.json", "model_summary.txt", "predictions.npz", "shapes.json"}


def check_recorded_whole(client, child) -> None:
    """A child run recorded once and whole: its shapes matched, no error, not reaped, each
    metric logged once, every artifact (the picture where it returned sequences)."""
    assert child.data.tags["shape.match"] == "true"
    assert "error" not in child.data.tags and "runner.reaped_by" not in child.data.tags
    assert child.data.metrics["oracle.max_abs_err"] < 1e-5
    for key in ("oracle.max_abs_err", "param_count", "job.seconds"):
        assert len(client.get_metric_history(child.info.run_id, key)) == 1  # never twice
    sequences = child.data.params["return_sequences"] == "true"
    names = {a.path for a in client.list_artifacts(child.info.run_id)}
    assert names == ARTIFACTS | ({"output_over_time.png"} if sequences else set())


# `python -m runner ARGS` that prints, as it exits, which heavy libraries it imported
PROBE = """
import atexit, runpy, sys
atexit.register(lambda: print("HEAVY", sorted(m for m in ("tensorflow", "keras", "mlflow")
                                               if m in sys.modules)))
sys.argv = ["runner", *sys.argv[1:]]
runpy.run_module("runner", run_name="__main__", alter_sys=True)
"""


def explain(directory: Path, *args) -> subprocess.CompletedProcess:
    """`python -m runner ARGS mode=explain` in `directory`, through PROBE."""
    return subprocess.run([sys.executable, "-c", PROBE, *args, "mode=explain"],
                          cwd=directory, capture_output=True, text=True, timeout=120)


def runner_env(**extra) -> dict:
    """The environment a user's shell gives the CLI (no MLflow or runner variables of ours)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_", "RUNNER_", "HYDRA_"))}
    return {**env, **extra}


def store_of(directory: Path) -> str:
    """The store the project's defaults use, for a CLI started in `directory`."""
    return f"sqlite:///{directory}/outputs/mlflow.db"


def runs_of(client, experiment="rnn-shapes"):
    """Every run of the experiment, oldest first."""
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    return sorted(client.search_runs([experiment_id], max_results=1000),
                  key=lambda run: run.info.start_time)


def parent_and_children(client, experiment="rnn-shapes"):
    runs = runs_of(client, experiment)
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r is not parent]
    return parent, children


def start_cli(directory: Path, *args, env=None, stderr=subprocess.PIPE,
              preexec_fn=None) -> subprocess.Popen:
    """`python -m runner ARGS` started in `directory`, as a user types it."""
    return subprocess.Popen([sys.executable, "-m", "runner", *args], cwd=directory,
                            env=env or runner_env(), stdout=subprocess.PIPE, stderr=stderr,
                            text=True, preexec_fn=preexec_fn)


class Sweep:
    """`python -m runner -m ...` in the background, its lines read as they come."""

    def __init__(self, directory: Path, url: str, *overrides: str, preexec_fn=None) -> None:
        self.process = start_cli(directory, "-m", *overrides,
                                 env=runner_env(MLFLOW_TRACKING_URI=url), preexec_fn=preexec_fn)
        self.lines, self.err = [], []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._errors = threading.Thread(target=lambda: self.err.extend(self.process.stderr),
                                        daemon=True)
        self._errors.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for_line(self, prefix: str, limit: float = 300.0) -> None:
        deadline = time.monotonic() + limit
        while not any(line.startswith(prefix) for line in self.lines):
            assert self.process.poll() is None, "".join(self.lines + self.err)[-3000:]
            assert time.monotonic() < deadline, f"no line {prefix!r}"
            time.sleep(0.05)

    def end(self, timeout: float = 600.0) -> tuple:
        code = self.process.wait(timeout=timeout)
        self._reader.join(30)
        self._errors.join(30)
        return code, "".join(self.lines), "".join(self.err)


def run_script(directory: Path, script: str, *args, env=None, timeout=300):
    """`python -c SCRIPT ARGS` (a CLI with something patched) in `directory`."""
    return subprocess.run([sys.executable, "-c", script, *args], cwd=directory,
                          env=env or runner_env(), capture_output=True, text=True,
                          timeout=timeout)


def recorder_of(pid: int) -> Path:
    """The /proc entry of the recording process of the runner process `pid`."""
    [recorder] = [p for p in Path("/proc").glob("[0-9]*")
                  if cmdline(p).endswith(f"-m runner.recording.process {pid}")]
    return recorder


def cmdline(process: Path) -> str:
    """A process's command line from /proc, or "" once it has ended (a zombie has none)."""
    try:
        return (process / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def wait_until_running(directory: Path, process, runs=1, limit=120.0) -> None:
    """Poll the store until its `runs` runs are all RUNNING (the job is then mid-way)."""
    store = directory / "outputs" / "mlflow.db"
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        try:
            rows = sqlite3.connect(store).execute("select status from runs").fetchall()
        except sqlite3.OperationalError:
            rows = []
        if rows == [("RUNNING",)] * runs:
            return
        time.sleep(0.2)
    pytest.fail("the job's run never started")


def check_children(client, total: int, models=("simple_rnn", "lstm", "gru", "bilstm"),
                   experiment="rnn-shapes"):
    """One FINISHED parent over `total` FINISHED children, each recorded whole: (parent, kids)."""
    parent, children = parent_and_children(client, experiment)
    assert len(children) == total
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert {c.info.status for c in children} == {"FINISHED"} and parent.info.status == "FINISHED"
    assert sorted(int(c.data.tags["job.num"]) for c in children) == list(range(total))
    for child in children:
        sequences = child.data.params["return_sequences"] == "true"
        assert child.data.params["model"] in models
        assert child.data.tags["shape.match"] == "true"
        assert child.data.tags["shape.output"].startswith("(4, 30," if sequences else "(4, ")
        assert len(child.data.tags["predictions.sha256"]) == 64
        assert child.data.metrics["oracle.max_abs_err"] < 1e-5
        names = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert names == ARTIFACTS | ({"output_over_time.png"} if sequences else set())
    assert parent.data.tags["jobs.total"] == str(total) and parent.data.tags["jobs.failed"] == "0"
    return parent, children


def examples(full: int) -> int:
    """Examples a property test draws: `full` in `make test`, a sixth in `make check`."""
    return full if os.environ.get("HYPOTHESIS_PROFILE") != "check" else max(3, full // 6)


# A job's device, memory, session and cuDNN calls on the Keras backend KERAS_BACKEND names,
# around a small LSTM's prediction, printed as one JSON line: what a job records there, and
# whether TensorFlow was imported on the way
BACKEND_PROBE = """
import json, os, sys
from runner.session import fresh_session, prepare_backend_environment

prepare_backend_environment(os.environ["KERAS_BACKEND"], gpu_memory_growth=True)
import keras
import numpy as np
from runner import memory
from runner.cudnn import cudnn_used
from runner.device import describe_device


def seeded_weights(seed):
    fresh_session(seed, gpu_memory_growth=True)
    model = keras.Sequential([keras.Input((30, 1)), keras.layers.LSTM(3)])
    return model, np.concatenate([w.ravel() for w in model.get_weights()])


_, other = seeded_weights(8)
_, first = seeded_weights(7)
model, weights = seeded_weights(7)
on_gpu = memory.reset_gpu_peak()
batch = {"inputs": np.ones((64, 30, 1), "float32")}
model.predict_on_batch(batch["inputs"])
print(json.dumps({
    "tags": describe_device(), "on_gpu": on_gpu,
    "gpu_peak_mb": memory.gpu_peak_mb() if on_gpu else None,
    "cudnn_used": cudnn_used(model, batch),
    "same_seed_same_weights": bool(np.array_equal(first, weights)),
    "other_seed_other_weights": not np.array_equal(other, weights),
    "preallocate": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE"),
    "tensorflow_imported": "tensorflow" in sys.modules}))
"""


def probe_backend(directory: Path, backend: str, **env) -> dict:
    """BACKEND_PROBE's JSON, run in `directory` in a process whose Keras uses `backend`."""
    probe = run_script(directory, BACKEND_PROBE, env=runner_env(KERAS_BACKEND=backend, **env),
                       timeout=120)
    assert probe.returncode == 0, probe.stderr[-3000:]
    return json.loads(probe.stdout.splitlines()[-1])
