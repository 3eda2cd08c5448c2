"""MLflow's work is done by a recorder process: out of the job's way, and nothing lost."""

import os
import signal
import subprocess
import sys

from conftest import runs_of
from test_faults import _env, _recorder_of, _start_slow_sweep, _wait_until_running

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
    result = subprocess.run(
        [sys.executable, "-c", REPORTING, "model=lstm", "return_sequences=true",
         f"hydra.run.dir={tmp_path}/run"],
        cwd=tmp_path, env=_env(store_uri), capture_output=True, text=True, timeout=300)
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
    assert (tmp_path / "run" / "artifacts" / "output_over_time.png").stat().st_size > 10_000


def test_a_recorder_killed_mid_sweep_loses_no_job_silently(tmp_path, store_uri, client):
    sweep = _start_slow_sweep(tmp_path, store_uri, "lstm,gru,simple_rnn")
    _wait_until_running(tmp_path, sweep, runs=2)  # the parent and the first job
    recorder = _recorder_of(sweep.pid)
    os.kill(int(recorder.name), signal.SIGKILL)  # as the OOM killer would
    out, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 1
    assert (f"lstm return_sequences=False -> FAILED: RecorderGone: the recording process "
            f"{recorder.name} ended (exit code -9); its run could not be closed") in out
    assert ("1 of 3 jobs failed: "
            "data.batch_size=256,data.timesteps=4000,model.units=64,model=lstm") in err
    runs = runs_of(client)
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = sorted((r for r in runs if r is not parent), key=lambda r: r.data.tags["job.num"])
    assert parent.info.status == "FAILED"  # closed by the recorder that took over
    assert [r.info.status for r in children] == ["FAILED", "FINISHED", "FINISHED"]
    assert children[0].data.tags["error"] == (
        "its job ended, but its run was never closed (its recording process or its worker died)")
    assert parent.data.tags["jobs.failed"] == "1"
