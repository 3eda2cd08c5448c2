"""MLflow's work is done by a recorder process: out of the job's way, and nothing lost."""

import os
import signal

import pytest

from helpers import (SLOW, parent_and_children, recorder_of, run_script, runs_of, start_cli,
                     wait_until_running)

pytestmark = pytest.mark.slow  # subprocesses and servers: in `make test`, not `make check`

# The CLI, reporting at exit which heavy modules its own process imported.
REPORTING = """
import atexit, os, runpy, sys

atexit.register(lambda: print("job process", os.getpid(), "imported",
                              sorted(m for m in ("mlflow", "sqlalchemy", "alembic")
                                     if m in sys.modules), file=sys.stderr))
sys.argv = ["runner", *sys.argv[1:]]
runpy.run_module("runner", run_name="__main__", alter_sys=True)
"""


def test_the_job_process_never_imports_mlflow(tmp_path, store_uri, client):
    result = run_script(tmp_path, REPORTING, "model=lstm", "return_sequences=true")
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("job process")]
    pid = line.split()[2]
    assert line.endswith("imported []")
    [run] = runs_of(client)
    assert run.info.status == "FINISHED"
    assert run.data.tags["runner.pid"] == pid  # the job's process, not the recorder's
    assert run.data.tags["shape.output"] == "(4, 30, 3)"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "output_over_time.png" in artifacts  # drawn by the recorder from the predictions
    [picture] = (tmp_path / "outputs" / "runs").glob("*/*/artifacts/output_over_time.png")
    assert picture.stat().st_size > 10_000


def test_a_recorder_killed_mid_sweep_loses_no_job_silently(tmp_path, store_uri, client):
    """Killed while the first job's run is open. Which run is lost depends on where the kill
    lands in the recorder's work, measured both ways on a loaded machine: the first job's, or,
    when its records were already in the journal (the next recorder sends them) and the second
    job had reached the dead recorder, the second's. Either way exactly one run is lost, and
    its job says so in its own line and in the summary."""
    sweep = start_cli(tmp_path, "-m", *SLOW[1:], "model=lstm,gru,simple_rnn")
    wait_until_running(tmp_path, sweep, runs=2)  # the parent and the first job
    recorder = recorder_of(sweep.pid)
    os.kill(int(recorder.name), signal.SIGKILL)  # as the OOM killer would
    out, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 1
    cells = [f"data.batch_size=256,data.timesteps=4000,model.units=64,model={model}"
             for model in ("lstm", "gru", "simple_rnn")]
    assert f"[1/3] {cells[0]} -> output (256, 64)" in out  # the job itself went well
    gone = (f"its run could not be recorded: RecordingProcessGone: the recording process "
            f"{recorder.name} ended (exit code -9)")
    assert f"error: job 0: {cells[0]} -> output (256, 64); {gone}" in err
    parent, children = parent_and_children(client)
    children = sorted(children, key=lambda r: r.data.tags["job.num"])
    assert parent.info.status == "FAILED"  # closed by the recorder that took over
    [lost] = [number for number, run in enumerate(children) if run.info.status == "FAILED"]
    assert lost in (0, 1)
    assert [r.info.status for r in children] == [
        "FAILED" if number == lost else "FINISHED" for number in range(3)]
    assert children[lost].data.tags["error"] == (
        "its job ended, but its run was never closed (its recording process or its worker died)")
    assert f"error: job {lost}: {cells[lost]} -> output (256, 64); {gone}" in err
    assert f"1 of 3 jobs failed: {cells[lost]}" in err
    assert parent.data.tags["jobs.failed"] == "1"
