"""Faults lose nothing: signals, kill -9, raising cells, SystemExit cells, sweeps that collide."""

import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import (SLOW, cmdline, parent_and_children, recorder_of, run_script, runs_of,
                     start_cli, wait_until_running)

pytestmark = pytest.mark.slow  # subprocesses and servers: in `make test`, not `make check`

# Runs the CLI with build_model patched to fail on chosen unit counts: faults from outside.
FAULTY = """
import runpy, sys
import runner.model as model

real = model.build_model

def build_model(layers, plan, name, seed=None):
    units = layers[0].get("units")
    if units == 7:
        raise RuntimeError("injected fault in build_model")
    if units == 9:
        sys.exit(3)
    return real(layers, plan, name, seed)

model.build_model = build_model
sys.argv = ["runner", *sys.argv[1:]]
runpy.run_module("runner", run_name="__main__", alter_sys=True)
"""

# A signal whose Interrupted is raised inside a finaliser (as a gc.collect() in the main thread
# runs them, while the job waits for its experiment) is only printed by Python: the job must still
# end KILLED, not carry on to FINISHED.
SWALLOWED = """
import gc, os, runpy, signal, sys
import runner.job as job


real = job.call_while_waiting


class Finaliser:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100_000):  # the handler runs here, and its exception goes nowhere
            pass


def call_while_waiting(function, *args):
    cycle = Finaliser()
    cycle.itself = cycle
    del cycle
    gc.collect()
    return real(function, *args)

job.call_while_waiting = call_while_waiting
sys.argv = ["runner", *sys.argv[1:]]
runpy.run_module("runner", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_job_ends_its_run_killed(tmp_path, store_uri, client, signum, code):
    process = start_cli(tmp_path, *SLOW, stderr=subprocess.STDOUT)
    wait_until_running(tmp_path, process)
    process.send_signal(signum)
    assert process.wait(timeout=120) == code
    [run] = runs_of(client)
    assert run.info.status == "KILLED"
    assert run.data.tags["error"] == (
        f"Interrupted: {signal.Signals(signum).name} received (exit code {code})")
    assert "data.timesteps" in run.data.params  # what was known is flushed with it
    name = signal.Signals(signum).name
    assert process.stdout.read().splitlines()[-1] == (
        f"stopped ({name} received (exit code {code})): run {run.info.run_id} KILLED in "
        f"outputs/mlflow.db")


def test_ctrl_c_on_a_sweep_ends_the_job_and_the_parent_killed(tmp_path, store_uri, client):
    sweep = start_cli(tmp_path, "-m", *SLOW[1:], "model=lstm,gru")
    wait_until_running(tmp_path, sweep, runs=2)  # the parent and the first job
    sweep.send_signal(signal.SIGINT)
    assert sweep.wait(timeout=120) == 130
    parent, *jobs = runs_of(client)
    assert "mlflow.parentRunId" not in parent.data.tags
    # The signal lands in the first job, or, on a loaded machine where that job's run shows
    # up late, in the second
    *finished, job = jobs
    assert [run.info.status for run in finished] == ["FINISHED"] * len(finished)
    assert (parent.info.status, job.info.status) == ("KILLED", "KILLED")
    assert job.info.run_name == ("data.batch_size=256,data.timesteps=4000,model.units=64,"
                                 f"model={'gru' if finished else 'lstm'}")
    assert job.data.tags["error"] == "Interrupted: SIGINT received (exit code 130)"
    said = sweep.stdout.read().splitlines()[-2:]
    command = ("python -m runner -m data.timesteps=4000 data.batch_size=256 model.units=64 "
               f"model=lstm,gru resume={parent.info.run_id}")
    rest = ", 1 killed" if finished else ", 1 killed, 1 not run"
    assert said == [f"stopped (SIGINT received (exit code 130)): sweep {parent.info.run_id} "
                    f"KILLED in outputs/mlflow.db: {len(finished)} of 2 cells finished{rest}",
                    f"  go on with: {command}"]
    resumed = start_cli(tmp_path, *shlex.split(command)[3:])  # as printed: it goes on
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"


def test_a_signal_swallowed_by_a_finaliser_still_ends_the_run_killed(tmp_path, store_uri, client):
    result = run_script(tmp_path, SWALLOWED, "model=gru")
    assert "Exception ignored in" in result.stderr  # Python swallowed the handler's exception
    assert result.returncode == 143
    [run] = runs_of(client)
    assert run.info.status == "KILLED"
    assert run.data.tags["error"] == "Interrupted: SIGTERM received (exit code 143)"


def test_kill_9_is_reaped_by_the_next_start(tmp_path, store_uri, client, run_cli):
    process = start_cli(tmp_path, *SLOW, stderr=subprocess.STDOUT)
    wait_until_running(tmp_path, process)
    recorder = recorder_of(process.pid)
    process.kill()
    process.wait(timeout=60)
    deadline = time.monotonic() + 30
    while cmdline(recorder) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not cmdline(recorder)  # the job's recorder saw its pipe close and ended
    [orphan] = runs_of(client)
    assert orphan.info.status == "RUNNING"  # nothing in MLflow reaps it by itself
    assert orphan.data.tags["runner.pid"] == str(process.pid)  # the job's, not its recorder's

    assert run_cli("model=simple_rnn").returncode == 0
    orphan, fresh = runs_of(client)
    assert orphan.info.status == "KILLED"
    assert f"process {process.pid} on " in orphan.data.tags["error"]
    assert fresh.info.status == "FINISHED"


def test_raising_and_exiting_cells_fail_alone(tmp_path, store_uri, client):
    result = run_script(tmp_path, FAULTY, "-m", "model=lstm", "model.units=3,7,9,5")
    assert result.returncode == 1
    assert "2 of 4 jobs failed: model.units=7,model=lstm; model.units=9,model=lstm" in result.stderr
    parent, children = parent_and_children(client)
    children = {r.info.run_name: r for r in children}
    assert {name: r.info.status for name, r in children.items()} == {
        "model.units=3,model=lstm": "FINISHED", "model.units=7,model=lstm": "FAILED",
        "model.units=9,model=lstm": "FAILED", "model.units=5,model=lstm": "FINISHED"}
    assert children["model.units=7,model=lstm"].data.tags["error"] == (
        "RuntimeError: injected fault in build_model")
    assert children["model.units=9,model=lstm"].data.tags["error"] == "SystemExit: 3"
    assert parent.info.status == "FAILED"
    assert parent.data.tags["jobs.failed_cells"] == (
        "model.units=7,model=lstm; model.units=9,model=lstm")


def test_two_sweeps_in_the_same_second_never_share_a_directory(tmp_path, store_uri, client):
    sweeps = [start_cli(tmp_path, "-m", "model=simple_rnn,gru") for _ in range(2)]
    assert [sweep.wait(timeout=300) for sweep in sweeps] == [0, 0]
    directories = sorted(Path(tmp_path, "outputs", "multirun").glob("*/*"))
    assert len(directories) == 2
    for directory in directories:
        assert sorted(p.name for p in directory.iterdir()) == ["0", "1", "multirun.yaml"]
    runs = runs_of(client)
    assert len(runs) == 6 and {r.info.status for r in runs} == {"FINISHED"}
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert sorted(Path(p.data.tags["sweep.dir"]).name for p in parents) == [
        d.name for d in directories]


def test_an_unreachable_tracking_server_fails_fast_naming_it(run_cli, tmp_path):
    import socket

    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{probe.getsockname()[1]}"
    single = run_cli("model=gru", env={"MLFLOW_TRACKING_URI": uri}, timeout=60)
    assert (single.returncode, single.stdout) == (1, "")
    assert single.stderr.startswith(f"error: tracking server {uri} did not answer (")
    assert single.stderr.endswith("); no run was recorded\n") and single.stderr.count("\n") == 1
    assert not (tmp_path / "outputs").exists()  # no run, no folder
    sweep = run_cli("-m", "model=gru,lstm", env={"MLFLOW_TRACKING_URI": uri}, timeout=60)
    assert sweep.returncode == 1
    assert f"error: tracking server {uri} did not answer" in sweep.stderr
    assert "no job was started" in sweep.stderr
    assert list((tmp_path / "outputs").glob("multirun/*/*/0")) == []  # no job directory either
