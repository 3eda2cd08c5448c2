"""A tracking server that goes away mid-sweep loses nothing: `mlflow server` on a real PostgreSQL,
stopped and started again on the same port (or answering 503 through a proxy) while a sweep
records into it. After each, every cell's run is in the store once, ended as its job ended,
with all its data, and the parent is closed with its summary."""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import servers
from helpers import ARTIFACTS, Sweep, check_recorded_whole, recorder_of, runner_env, start_cli

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(servers.POSTGRES_BIN is None,
                       reason="Debian's postgresql is not installed (.ci/run installs it with apt-get)"),
]

GRID = ["model=simple_rnn,lstm,gru,bilstm", "return_sequences=false,true", "seed=0,1"]  # 16 cells
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One PostgreSQL and one `mlflow server` for the module; each test its own experiment."""
    directory = tmp_path_factory.mktemp("server")
    with servers.postgres() as database, servers.mlflow_server(database, directory) as running:
        yield running


def check_sweep(client, experiment: str, cells: int) -> None:
    """One parent FINISHED with its summary over `cells` children, each once, FINISHED with
    its params, metrics (each value once), tags and artifacts; no run RUNNING."""
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    runs = client.search_runs([experiment_id], max_results=1000)
    [parent] = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    children = [run for run in runs if run is not parent]
    assert sorted(int(c.data.tags["job.num"]) for c in children) == list(range(cells))
    assert {run.info.status for run in runs} == {"FINISHED"}
    assert (parent.data.tags["jobs.total"], parent.data.tags["jobs.failed"]) == (str(cells), "0")
    assert "summary.json" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.params["model"] in ("simple_rnn", "lstm", "gru", "bilstm")
        check_recorded_whole(client, child)


def journal_files(directory: Path) -> list:
    return sorted((directory / "outputs" / "journal").glob("*.jsonl"))


def test_a_thirty_second_outage_after_the_third_cell_loses_nothing(server, tmp_path):
    from mlflow import MlflowClient

    sweep = Sweep(tmp_path, server.url, *GRID, "tracking.experiment=mid-sweep")
    try:
        sweep.wait_for_line("[3/16]")
        server.stop()
        time.sleep(30)  # the outage itself
        server.start()
        back = time.monotonic()
        code, out, err = sweep.end()
    finally:
        sweep.process.kill()
    print(f"the sweep ended {time.monotonic() - back:.1f} s after the server was back")
    assert code == 0, err[-3000:]
    assert err.count("is away") == 1 and err.count("is back: the ") == 1, err
    assert re.search(rf"runner: tracking server {server.url} is back: the \d+ records that "
                     rf"waited have arrived", err)
    check_sweep(MlflowClient(server.url), "mid-sweep", 16)
    assert journal_files(tmp_path) == []  # everything sent: nothing left waiting


def test_an_outage_during_the_parents_close(server, tmp_path):
    """The server stops as the close writes its first file (the summary), for 10 s."""
    from mlflow import MlflowClient

    fired, restarted = threading.Lock(), threading.Event()

    def outage_at_the_close(method: str, path: str) -> None:
        if "summary.json" in path and fired.acquire(blocking=False):  # once, at the first
            server.stop()
            threading.Timer(10, lambda: (server.start(), restarted.set())).start()

    proxy = servers.FlakyProxy(server.url, outage_at_the_close)
    try:
        sweep = Sweep(tmp_path, proxy.url, "model=simple_rnn,gru", "return_sequences=false,true",
                      "tracking.experiment=at-close")
        code, out, err = sweep.end()
        assert restarted.wait(60), "the close never reached the server"
    finally:
        proxy.close()
    assert code == 0, err[-3000:]
    assert "is away" in err and "is back" in err
    check_sweep(MlflowClient(server.url), "at-close", 4)


def test_an_outage_that_outlasts_the_sweep_is_sent_by_the_sync_command(server, tmp_path):
    from mlflow import MlflowClient

    sweep = Sweep(tmp_path, server.url, *GRID[:2], "tracking.experiment=outlasting",
                  "tracking.retry_minutes=0.2")
    try:
        sweep.wait_for_line("[3/8]")
        server.stop()
        code, out, err = sweep.end()
    finally:
        sweep.process.kill()
        if server.process.poll() is not None:
            server.start()
    journal = tmp_path / "outputs" / "journal"
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    [line] = errors
    assert re.fullmatch(rf"error: tracking server {server.url} is away: \d+ records wait in "
                        rf"{journal}; once it answers, send them with: python -m runner.sync "
                        rf"{journal}; the sweep's parent run \w+ is closed with them", line), line
    waiting = int(re.search(r"away: (\d+) records", line).group(1))
    assert waiting >= 11  # the ends of at least 5 cells' runs, their starts, and the close

    sync = subprocess.run([sys.executable, "-m", "runner.sync", str(journal)], cwd=tmp_path,
                          env=runner_env(), capture_output=True, text=True, timeout=300)
    assert sync.returncode == 0, sync.stderr
    assert sync.stdout.splitlines()[0].startswith(f"sent {waiting} records from {journal} to "
                                                  f"{server.url}: ")
    assert sync.stdout.splitlines()[0].endswith(" sweeps closed") and ", 1 sweeps" in sync.stdout
    check_sweep(MlflowClient(server.url), "outlasting", 8)
    again = subprocess.run([sys.executable, "-m", "runner.sync", str(journal)], cwd=tmp_path,
                           env=runner_env(), capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and again.stdout == f"nothing waits in {journal}\n"


def test_a_recording_process_killed_with_records_waiting_is_sent_by_the_next_start(
        server, tmp_path):
    """A job alone: its run created, then the server stops; its end waits in the journal when
    its recording process is killed -9. The next start on this journal sends it first: the
    run ends as its job ended (FINISHED), not KILLED by the reaper."""
    from mlflow import MlflowClient

    client = MlflowClient(server.url)
    env = runner_env(MLFLOW_TRACKING_URI=server.url)
    job = start_cli(tmp_path, "model=lstm", "data.timesteps=2000", "data.batch_size=128",
                    "tracking.experiment=killed", env=env)
    try:
        deadline = time.monotonic() + 120
        while not client.get_experiment_by_name("killed") or not client.search_runs(
                [client.get_experiment_by_name("killed").experiment_id]):
            assert job.poll() is None and time.monotonic() < deadline, job.communicate()
            time.sleep(0.1)
        recorder = recorder_of(job.pid)
        server.stop()
        while not any('"request": "FinishRun"' in path.read_text()
                      for path in journal_files(tmp_path)):
            assert job.poll() is None and time.monotonic() < deadline, job.communicate()
            time.sleep(0.1)
        os.kill(int(recorder.name), signal.SIGKILL)
        out, err = job.communicate(timeout=120)
    finally:
        job.kill()
        server.start()
    assert job.returncode == 1
    assert "RecordingProcessGone" in out
    [run] = client.search_runs([client.get_experiment_by_name("killed").experiment_id])
    assert run.info.status == "RUNNING"

    again = start_cli(tmp_path, "model=gru", "tracking.experiment=killed", env=env)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-3000:]
    runs = client.search_runs([client.get_experiment_by_name("killed").experiment_id])
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    [first] = [r for r in runs if r.info.run_id == run.info.run_id]
    assert first.data.tags["shape.output"] == "(128, 3)"
    assert "error" not in first.data.tags and "runner.reaped_by" not in first.data.tags
    assert {a.path for a in client.list_artifacts(first.info.run_id)} == ARTIFACTS
    assert journal_files(tmp_path) == []
    sync = subprocess.run([sys.executable, "-m", "runner.sync"], cwd=tmp_path, env=runner_env(),
                          capture_output=True, text=True, timeout=60)
    assert sync.returncode == 0 and sync.stdout.startswith("nothing waits in ")


def test_a_server_answering_503_for_a_while(server, tmp_path):
    from mlflow import MlflowClient

    proxy = servers.FlakyProxy(server.url)
    try:
        sweep = Sweep(tmp_path, proxy.url, "model=simple_rnn,lstm,gru",
                      "return_sequences=false,true", "tracking.experiment=answers-503")
        sweep.wait_for_line("[2/6]")
        proxy.unavailable.set()
        time.sleep(12)  # the server answers 503 to everything meanwhile
        proxy.unavailable.clear()
        code, out, err = sweep.end()
    finally:
        proxy.close()
    assert code == 0, err[-3000:]
    assert proxy.answered_503 > 0
    assert err.count("is away") == 1 and "503" in err and "is back" in err, err
    check_sweep(MlflowClient(server.url), "answers-503", 6)
