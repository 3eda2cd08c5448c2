"""Faults lose nothing: signals, kill -9, raising cells, SystemExit cells, sweeps that collide."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import runs_of

SLOW = ["model=lstm", "data.timesteps=4000", "data.batch_size=256", "model.units=64"]

# Runs the CLI with build_model patched to fail on chosen unit counts: faults from outside.
FAULTY = """
import runpy, sys
import runner.model as model

real = model.build_model

def build_model(layers, plan, name):
    units = layers[0].get("units")
    if units == 7:
        raise RuntimeError("injected fault in build_model")
    if units == 9:
        sys.exit(3)
    return real(layers, plan, name)

model.build_model = build_model
sys.argv = ["runner", *sys.argv[1:]]
runpy.run_module("runner", run_name="__main__", alter_sys=True)
"""

# A signal whose Interrupted is raised inside a finaliser (as clear_session()'s gc.collect() runs
# them) is only printed by Python: the job must still end KILLED, not carry on to FINISHED.
SWALLOWED = """
import gc, os, runpy, signal, sys
import runner.model as model

real = model.build_model


class Finaliser:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100_000):  # the handler runs here, and its exception goes nowhere
            pass


def build_model(layers, plan, name):
    cycle = Finaliser()
    cycle.itself = cycle
    del cycle
    gc.collect()
    return real(layers, plan, name)

model.build_model = build_model
sys.argv = ["runner", *sys.argv[1:]]
runpy.run_module("runner", run_name="__main__", alter_sys=True)
"""


def _env(store_uri):
    return {**os.environ, "MLFLOW_TRACKING_URI": store_uri, "TF_CPP_MIN_LOG_LEVEL": "2"}


def _start_slow_job(tmp_path, store_uri):
    return subprocess.Popen(
        [sys.executable, "-m", "runner", *SLOW, f"hydra.run.dir={tmp_path}/run"],
        cwd=tmp_path, env=_env(store_uri), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)


def _start_slow_sweep(tmp_path, store_uri, models):
    return subprocess.Popen(
        [sys.executable, "-m", "runner", "-m", *SLOW[1:], f"model={models}",
         f"hydra.sweep.dir={tmp_path}/multirun"],
        cwd=tmp_path, env=_env(store_uri), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def _recorder_of(pid: int) -> Path:
    """The /proc entry of the recorder process of the runner process `pid`."""
    [recorder] = [p for p in Path("/proc").glob("[0-9]*")
                  if _cmdline(p).endswith(f"-m runner.recorder {pid}")]
    return recorder


def _cmdline(process: Path) -> str:
    """A process's command line from /proc, or "" once it has ended (a zombie has none)."""
    try:
        return (process / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _wait_until_running(tmp_path, process, runs=1, limit=120.0):
    """Poll the store until its `runs` runs are all RUNNING (the job is then mid-way)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        try:
            rows = sqlite3.connect(tmp_path / "mlflow.db").execute(
                "select status from runs").fetchall()
        except sqlite3.OperationalError:
            rows = []
        if rows == [("RUNNING",)] * runs:
            return
        time.sleep(0.2)
    pytest.fail("the job's run never started")


@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_job_ends_its_run_killed(tmp_path, store_uri, client, signum, code):
    process = _start_slow_job(tmp_path, store_uri)
    _wait_until_running(tmp_path, process)
    process.send_signal(signum)
    assert process.wait(timeout=120) == code
    [run] = runs_of(client)
    assert run.info.status == "KILLED"
    assert run.data.tags["error"] == (
        f"Interrupted: {signal.Signals(signum).name} received (exit code {code})")
    assert "data.timesteps" in run.data.params  # what was known is flushed with it


def test_ctrl_c_on_a_sweep_ends_the_job_and_the_parent_killed(tmp_path, store_uri, client):
    sweep = _start_slow_sweep(tmp_path, store_uri, "lstm,gru")
    _wait_until_running(tmp_path, sweep, runs=2)  # the parent and the first job
    sweep.send_signal(signal.SIGINT)
    assert sweep.wait(timeout=120) == 130
    parent, job = runs_of(client)
    assert "mlflow.parentRunId" not in parent.data.tags
    assert (parent.info.status, job.info.status) == ("KILLED", "KILLED")
    assert job.info.run_name == "data.batch_size=256,data.timesteps=4000,model.units=64,model=lstm"
    assert job.data.tags["error"] == "Interrupted: SIGINT received (exit code 130)"


def test_a_signal_swallowed_by_a_finaliser_still_ends_the_run_killed(tmp_path, store_uri, client):
    result = subprocess.run([sys.executable, "-c", SWALLOWED, "model=gru"], cwd=tmp_path,
                            env=_env(store_uri), capture_output=True, text=True, timeout=300)
    assert "Exception ignored in" in result.stderr  # Python swallowed the handler's exception
    assert result.returncode == 143
    [run] = runs_of(client)
    assert run.info.status == "KILLED"
    assert run.data.tags["error"] == "Interrupted: SIGTERM received (exit code 143)"


def test_kill_9_is_reaped_by_the_next_start(tmp_path, store_uri, client, run_cli):
    process = _start_slow_job(tmp_path, store_uri)
    _wait_until_running(tmp_path, process)
    recorder = _recorder_of(process.pid)
    process.kill()
    process.wait(timeout=60)
    deadline = time.monotonic() + 30
    while _cmdline(recorder) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _cmdline(recorder)  # the job's recorder saw its pipe close and ended
    [orphan] = runs_of(client)
    assert orphan.info.status == "RUNNING"  # nothing in MLflow reaps it by itself
    assert orphan.data.tags["runner.pid"] == str(process.pid)  # the job's, not its recorder's

    assert run_cli("model=simple_rnn").returncode == 0
    orphan, fresh = runs_of(client)
    assert orphan.info.status == "KILLED"
    assert f"process {process.pid} on " in orphan.data.tags["error"]
    assert fresh.info.status == "FINISHED"


def test_raising_and_exiting_cells_fail_alone(tmp_path, store_uri, client):
    result = subprocess.run(
        [sys.executable, "-c", FAULTY, "-m", "model=lstm", "model.units=3,7,9,5",
         f"hydra.sweep.dir={tmp_path}/multirun"],
        cwd=tmp_path, env=_env(store_uri), capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "2 of 4 jobs failed: model.units=7,model=lstm; model.units=9,model=lstm" in result.stderr
    runs = runs_of(client)
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {r.info.run_name: r for r in runs if r is not parent}
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
    command = [sys.executable, "-m", "runner", "-m", "model=simple_rnn,gru"]
    sweeps = [subprocess.Popen(command, cwd=tmp_path, env=_env(store_uri),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(2)]
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


def test_long_values_and_odd_keys_are_recorded_whole(tmp_path, client):
    from omegaconf import OmegaConf

    from runner import tracking

    cfg = OmegaConf.create({"uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "rnn-shapes",
                            "artifact_root": None})
    run_id = tracking.start_job(cfg, "long values", {})
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    long_value = "0123456789" * 700
    tracking.finish_job(cfg, run_id, {"model.note": long_value, "odd[key]:1": "v"}, {}, {},
                        artifacts)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["odd_key__1"] == "v"
    kept = run.data.params["model.note"]
    assert len(kept) == 6000 and kept.startswith(long_value[:5000])
    assert kept.endswith("[7000 characters: see artifact params/model.note.txt]")
    local = client.download_artifacts(run_id, "params/model.note.txt", str(tmp_path / "down"))
    assert Path(local).read_text() == long_value
    key = tracking.param_key("k" * 300)
    assert len(key) == 250 and key == tracking.param_key("k" * 300)
    assert key != tracking.param_key("k" * 299 + "j")


def test_an_unreachable_tracking_server_fails_fast_naming_it(run_cli, tmp_path):
    import socket

    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{probe.getsockname()[1]}"
    single = run_cli("model=gru", env={"MLFLOW_TRACKING_URI": uri}, timeout=60)
    assert single.returncode == 1
    assert f"FAILED: StoreUnreachable: tracking server {uri} did not answer" in single.stdout
    sweep = run_cli("-m", "model=gru,lstm", env={"MLFLOW_TRACKING_URI": uri}, timeout=60)
    assert sweep.returncode == 1
    assert f"error: tracking server {uri} did not answer" in sweep.stderr
    assert "no job was started" in sweep.stderr
    assert not (tmp_path / "outputs" / "multirun" / "0").exists()
