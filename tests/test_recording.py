"""The recording path in-process: the store's MLflow calls, and typed requests answered as
futures by a real recording process."""

import contextlib
import os
import signal
import threading
import time

import pytest

from helpers import runs_of
from runner.recording.requests import (CloseSweep, CreateParent, FinishRun, JobReport, StartRun,
                                       Tracking)
from runner.result import Failure, JobResult


@pytest.fixture
def tracking(made_store, tmp_path):
    return Tracking(made_store, "rnn-shapes", str(tmp_path / "outputs" / "mlartifacts"))


def _now() -> int:
    return int(time.time() * 1000)


@contextlib.contextmanager
def _stopped(pid: int, longest: float = 10.0):
    """The process stopped (SIGSTOP) within the block, and resumed after `longest` seconds
    even if the block is still waiting on it."""
    os.kill(pid, signal.SIGSTOP)
    resume = threading.Timer(longest, os.kill, (pid, signal.SIGCONT))
    resume.start()
    try:
        yield
    finally:
        resume.cancel()
        os.kill(pid, signal.SIGCONT)


def test_long_values_and_odd_keys_are_recorded_whole(tracking, client, tmp_path):
    from runner.recording.limits import param_key
    from runner.recording.store import Store

    store = Store(tracking, os.getpid())
    run_id = store.start_run("long values", {"job.num": "0"}, None, _now()).run_id
    long_value = "0123456789" * 700
    result = JobResult(label="long values", params={}, artifact_dir=tmp_path / "artifacts")
    store.finish_run(run_id, {"model.note": long_value, "odd[key]:1": "v"}, result, _now())
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["odd_key__1"] == "v"
    kept = run.data.params["model.note"]
    assert len(kept) == 6000 and kept.startswith(long_value[:5000])
    assert kept.endswith("[7000 characters: see artifact params/model.note.txt]")
    local = client.download_artifacts(run_id, "params/model.note.txt", str(tmp_path / "down"))
    assert open(local).read() == long_value
    assert run.data.tags["runner.pid"] == str(os.getpid())
    key = param_key("k" * 300)
    assert len(key) == 250 and key == param_key("k" * 300)
    assert key != param_key("k" * 299 + "j")


def test_requests_are_answered_in_order_as_futures(tracking, client, tmp_path):
    """A parent, two runs (one failed) and the sweep's close, through a real recording process;
    the job goes on before its run's id has come back (the run is named by its key)."""
    from runner.recording.client import RecordingProcess

    process = RecordingProcess()
    try:
        parent_id = process.submit(CreateParent(tracking, "model=lstm,gru", {})).result(60).run_id
        futures = []
        for key, (name, error) in enumerate([("model=lstm", None),
                                             ("model=gru", RuntimeError("injected"))], start=1):
            result = JobResult(label=name, params={"model": name[6:]},
                               artifact_dir=tmp_path / name, outputs={"output": (4, 3)},
                               tags={"shape.output": "(4, 3)"}, metrics={"param_count": 60},
                               error=Failure.of(error) if error else None)
            # The recording process is stopped, so it cannot create the run while the job
            # submits; a submit that waited for the run would return only once it is resumed
            with _stopped(process.process.pid):
                started = process.submit(StartRun(tracking, key, name,
                                                   {"job.num": str(key - 1)}, parent_id, _now()))
                futures.append(process.submit(FinishRun(tracking, key, {"model": name[6:]},
                                                         result, _now())))
                assert not started.done()  # the job did not wait for its run to be created
            assert started.result(60).run_id
        assert [future.result(60) for future in futures] == [None, None]
        jobs = (JobReport(0, "model=lstm", True, "lstm"), JobReport(1, "model=gru", False, "gru"),
                JobReport(2, "model=simple_rnn", False, "simple_rnn -> FAILED: lost"))
        rows = process.submit(CloseSweep(tracking, parent_id, None, jobs)).result(60)
    finally:
        process.close()
    assert [(row["job"], row["status"]) for row in rows] == [
        (0, "FINISHED"), (1, "FAILED"), (2, "FAILED")]
    assert rows[2]["error"] == "no run recorded: FAILED: lost"
    parent = client.get_run(parent_id)
    assert parent.info.status == "FAILED"
    assert parent.data.tags["jobs.failed_cells"] == "model=gru; model=simple_rnn"
    failed = [r for r in runs_of(client) if r.info.run_name == "model=gru"][0]
    assert failed.data.tags["error"] == "RuntimeError: injected"
    assert failed.data.tags["runner.pid"] == str(os.getpid())  # this process, not the process


def test_a_run_that_could_not_be_created_fails_its_finish_the_same_way(tmp_path):
    from runner.recording.client import RecordingProcess
    from runner.recording.server import StoreUnreachable

    import socket

    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{probe.getsockname()[1]}"
    tracking = Tracking(uri, "rnn-shapes")
    process = RecordingProcess()
    try:
        started = process.submit(StartRun(tracking, 1, "model=gru", {}, None, _now()))
        result = JobResult(label="gru", params={}, artifact_dir=tmp_path)
        finished = process.submit(FinishRun(tracking, 1, {}, result, _now()))
        for future in (started, finished):
            with pytest.raises(StoreUnreachable, match=f"tracking server {uri} did not answer"):
                future.result(60)
    finally:
        process.close()


def test_a_recorder_that_dies_fails_every_pending_future(tracking, tmp_path):
    import signal

    from runner.recording.client import RecordingProcess, RecordingProcessGone

    process = RecordingProcess()
    process.submit(CreateParent(tracking, "p", {})).result(60)
    os.kill(process.process.pid, signal.SIGKILL)
    pending = process.submit(StartRun(tracking, 1, "model=gru", {}, None, _now()))
    with pytest.raises(RecordingProcessGone, match=rf"recording process {process.process.pid} ended"):
        pending.result(30)
    assert not process.alive()


def test_a_tracking_servers_credentials_are_never_recorded(make_cfg, tmp_path):
    """A password written into tracking.uri reaches MLflow's client, not the run's params or
    its config.yaml."""
    from runner.experiment import run_experiment
    from runner.validate import validate

    spec = validate(make_cfg("tracking.uri=http://alice:s3cret@127.0.0.1:5000"))
    assert spec.config["tracking"]["uri"] == "http://alice:s3cret@127.0.0.1:5000"
    result = run_experiment(spec, tmp_path / "artifacts")
    assert result.error is None, result.error.line
    assert result.params["tracking.uri"] == "http://127.0.0.1:5000"
    assert not any("s3cret" in value for value in result.params.values())
    kept = (tmp_path / "artifacts" / "config.yaml").read_text()
    assert "uri: http://127.0.0.1:5000" in kept and "s3cret" not in kept
