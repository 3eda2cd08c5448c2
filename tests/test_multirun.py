"""Sweeps: one parent per multirun, a child per cell, a summary; failures lose nothing."""

import json
import subprocess
import sys

import pytest

from helpers import SEED_TABLE, parent_and_children, run_script, runner_env, runs_of


@pytest.mark.slow
def test_seed_sweep_reproduces_the_notebook(run_cli, client, tmp_path):
    result = run_cli("-m", "sweep=seed")
    assert result.returncode == 0, result.stderr
    runs = runs_of(client)
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 9 and len(children) == 8
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name == "sweep=seed"
    assert parent.data.tags["jobs.total"] == "8" and parent.data.tags["jobs.failed"] == "0"
    assert {c.info.run_name.lower(): c.data.tags["shape.output"] for c in children} == SEED_TABLE
    assert {c.info.status for c in children} == {"FINISHED"}
    assert sorted(int(c.data.tags["job.num"]) for c in children) == list(range(8))

    local = client.download_artifacts(parent.info.run_id, "", str(tmp_path / "parent"))
    summary = json.loads(open(f"{local}/summary.json").read())
    rows = [dict(zip(summary["columns"], row)) for row in summary["data"]]
    assert [r["job"] for r in rows] == list(range(8))
    assert {r["overrides"].lower(): r["shape.output"] for r in rows} == SEED_TABLE
    assert {r["status"] for r in rows} == {"FINISHED"}
    assert {r["expected"] for r in rows} == {r["outputs"] for r in rows}
    assert {r["shape.match"] for r in rows} == {"true"}
    assert all(r["oracle.max_abs_err"] < 1e-5 for r in rows)
    assert rows[4]["param_count"] == 120 and rows[4]["outputs"] == "output (4, 6)"
    assert all(r["seconds"] >= 0 for r in rows)
    text = open(f"{local}/summary.txt").read()
    assert "model=bilstm,return_sequences=true" in text and "(4, 30, 6)" in text

    # pictures: every timestep where there are timesteps; the grid on the parent
    for child in children:
        names = [a.path for a in client.list_artifacts(child.info.run_id)]
        sequences = child.data.params["return_sequences"] == "true"
        assert ("output_over_time.png" in names) is sequences
    assert "grid.png" in [a.path for a in client.list_artifacts(parent.info.run_id)]
    assert "model=bilstm,return_sequences=true" in parent.data.tags["mlflow.note.content"]

    # a quiet console: a line per cell as it completes, the table, where the sweep is
    lines = result.stdout.splitlines()
    assert result.stderr == "" and len(lines) == 22
    assert lines[0].startswith("[1/8] model=simple_rnn,return_sequences=false -> output (4, 3)   ")
    assert lines[7].startswith(
        "[8/8] model=lambda_lstm,return_sequences=true -> output (4, 30, 1)   ")
    assert lines[8].startswith("job  overrides") and lines[10].startswith("0    model=simple_rnn")
    experiment_id, parent_id = parent.info.experiment_id, parent.info.run_id
    ui = f"http://127.0.0.1:5000/#/experiments/{experiment_id}"
    assert lines[18:20] == [
        f"recorded: sweep {parent_id} with 8 runs in outputs/mlflow.db, experiment rnn-shapes",
        f"  runs:    {ui}/runs?workflowType=machine_learning&viewStateShareKey={parent_id}"
        "   (make ui serves it)"]
    assert all(child.info.run_id in lines[20] for child in children)
    assert lines[20].startswith("  compare: http://127.0.0.1:5000/#/compare-runs?runs=")
    # where the figure is: its page in the UI, and its file beside the store
    assert lines[21] == (f"  figure:  {ui}/runs/{parent_id}/artifacts/grid.png   "
                         f"(file outputs/mlartifacts/{parent_id}/artifacts/grid.png)")
    assert (tmp_path / f"outputs/mlartifacts/{parent_id}/artifacts/grid.png").is_file()
    # the view that the runs address opens: the sweep's children, their shapes shown
    view = json.loads(client.get_experiment(experiment_id).tags[
        f"mlflow.sharedViewState.{parent_id}"])
    assert view["searchFilter"] == f"tags.mlflow.parentRunId = '{parent_id}'"
    assert view["orderByKey"] == "tags.`mlflow.runName`" and view["orderByAsc"] is True
    assert "tags.`shape.output`" in view["selectedColumns"]
    assert "\033[" not in result.stdout

    # read back as the notebook's own table: stacks down, return_sequences across
    table = subprocess.run([sys.executable, "-m", "runner.results", "--pivot", "model",
                            "return_sequences"], cwd=tmp_path, env=runner_env(),
                           capture_output=True, text=True, timeout=120)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines() == [
        f"sweep {parent.info.run_id} (sweep=seed): FINISHED, 8 cells",
        "model        return_sequences=false  return_sequences=true",
        "-----------  ----------------------  ---------------------",
        "simple_rnn   (4, 3)                  (4, 30, 3)",
        "lstm         (4, 3)                  (4, 30, 3)",
        "bilstm       (4, 6)                  (4, 30, 6)",
        "lambda_lstm  (4, 1)                  (4, 30, 1)"]


@pytest.mark.slow
def test_a_failing_cell_fails_alone(run_cli, client):
    result = run_cli("-m", "model=lambda_lstm", "model.layers.1.return_sequences=true,false",
                     "model.units=4")
    assert result.returncode == 1
    assert "1 of 2 jobs failed" in result.stderr
    runs = runs_of(client)
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {r.info.run_name: r for r in runs if r is not parent}
    good = children["model.layers.1.return_sequences=true,model.units=4,model=lambda_lstm"]
    bad = children["model.layers.1.return_sequences=false,model.units=4,model=lambda_lstm"]
    assert good.info.status == "FINISHED" and good.data.tags["shape.output"] == "(4, 1)"
    assert bad.info.status == "FAILED"
    assert "model.layers.2: LSTM needs a 3-D input" in bad.data.tags["error"]
    assert [a.path for a in client.list_artifacts(bad.info.run_id)] == ["error.txt"]
    assert parent.info.status == "FAILED"
    assert parent.data.tags["jobs.failed"] == "1"
    assert parent.data.tags["jobs.failed_cells"] == bad.info.run_name
    assert {r.info.status for r in runs} <= {"FINISHED", "FAILED"}  # nothing left RUNNING


def test_a_grid_with_bad_cells_starts_nothing_and_names_them_all(run_cli, tmp_path):
    result = run_cli("-m", "model=lstm", "data.batch_size=4,two,-1.5")
    assert result.returncode == 1
    assert "2 of 3 cells are invalid; no job was started" in result.stderr
    assert "  model=lstm data.batch_size=two: data.batch_size: must be an integer, got 'two'\n" \
        in result.stderr  # the line a single run with data.batch_size=two gets, after its cell
    assert "  model=lstm data.batch_size=-1.5: data.batch_size: must be an integer, got " \
        "'-1.5'\n" in result.stderr
    assert "full_key" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # no parent, no child, no store, no outputs/


def test_a_cell_with_no_such_stack_gets_the_single_runs_line(run_cli, tmp_path):
    result = run_cli("-m", "model=lstm,transformer")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        "1 of 2 cells are invalid; no job was started:\n"
        "  model=transformer: model: no stack named 'transformer'; available: bilstm, gru, "
        "guide_bidirectional, guide_cells, guide_embedding_lstm, guide_encoder_decoder, "
        "guide_gru_simple_rnn, guide_stateful, lambda_lstm, lstm, simple_rnn\n")
    assert list(tmp_path.iterdir()) == []


# Each composition, in whichever process makes it, is a line of compositions.log
COUNT_COMPOSITIONS = """
import os, runpy, sys
from hydra._internal.config_loader_impl import ConfigLoaderImpl

compose = ConfigLoaderImpl.load_configuration
def counted(self, *args, **kwargs):
    with open("compositions.log", "a") as log:
        log.write(f"{os.getpid()}\\n")
    return compose(self, *args, **kwargs)
ConfigLoaderImpl.load_configuration = counted
sys.argv = ["runner", *sys.argv[1:]]
runpy.run_module("runner", run_name="__main__")
"""


@pytest.mark.slow
def test_each_cell_is_composed_once(tmp_path, client):
    """The sweeper composes and checks every cell up front; the launcher reuses those configs
    (with the sweep's parent and store in each job's environment) instead of composing again."""
    result = run_script(tmp_path, COUNT_COMPOSITIONS, "-m", "model=lstm,gru")
    assert result.returncode == 0, result.stderr[-3000:]
    # Hydra composes the sweep's own config twice (to read hydra.mode, then to run it); then
    # one per cell, in the child that checks them, where composing again in the launcher would
    # make it 6
    pids = (tmp_path / "compositions.log").read_text().split()
    assert len(pids) == 4
    assert pids[0] == pids[1] != pids[2] == pids[3]
    parent, children = parent_and_children(client)
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert sorted(c.info.run_name for c in children) == ["model=gru", "model=lstm"]
    job_dirs = sorted(p.parent.parent.name
                      for p in (tmp_path / "outputs").glob("multirun/*/*/*/.hydra/hydra.yaml"))
    assert job_dirs == ["0", "1"]  # one sweep directory, as Hydra's own composition gives


COUNTED_VALIDATE = """
import atexit, os, runpy, sys
import runner.validate as validate
checked = validate.validate
calls = []
def counted(*args, **kwargs):
    calls.append(os.getpid())
    return checked(*args, **kwargs)
validate.validate = counted
here = os.getpid()
atexit.register(lambda: print(f"validated here: {calls.count(here)}; kept: {len(validate._CHECKED)}"))
sys.argv = ["runner", *sys.argv[1:]]
runpy.run_module("runner", run_name="__main__")
"""


@pytest.mark.slow
def test_a_sweep_checks_each_cell_once_and_its_jobs_run_on_that_check(tmp_path, client):
    """The cells are checked in forked children before any run; a job in the sweeper's own
    process takes its cell's spec from there and is not validated again."""
    result = run_script(tmp_path, COUNTED_VALIDATE, "-m", "model=lstm,gru",
                        "return_sequences=false,true")
    assert result.returncode == 0, result.stderr
    assert "validated here: 0; kept: 0" in result.stdout
    parent, children = parent_and_children(client)
    assert sorted(c.data.tags["shape.output"] for c in children) == [
        "(4, 3)", "(4, 3)", "(4, 30, 3)", "(4, 30, 3)"]
    assert {c.info.status for c in children} == {"FINISHED"}
