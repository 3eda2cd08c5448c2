"""Sweeps resumed: a stopped sweep runs only what is missing, under its parent and its job
numbers; a finished one runs nothing; another grid is refused."""

import signal
import sqlite3
import time

import pytest

from helpers import ROOT, run_script, runs_of, start_cli
from runner.resume import Plan, ResumeRefused, plan_resume, split_resume
from runner.identity import cell_key, config_sha256
from runner.recording.requests import Attempt, RunRef, SweepFound

CELLS = [("model=lstm", "seed=0"), ("model=lstm", "seed=1"), ("model=gru", "seed=0"),
         ("model=gru", "seed=1"), ("model=bilstm", "seed=0")]
GRID = tuple(cell_key(cell) for cell in CELLS)
DIGESTS = {key: f"digest of {key}" for key in GRID}


def found(attempts=None, status="KILLED", alive=False, grid=GRID) -> SweepFound:
    return SweepFound(parent=RunRef("p1", "1"), status=status, grid=grid,
                      owner="process 42 on box", owner_alive=alive, attempts=attempts or {},
                      runs=(), rows=[], resumes=0)


def test_the_digest_is_what_the_job_computes_not_where_it_is_recorded(make_cfg):
    from runner.validate import validate

    digest = config_sha256(validate(make_cfg("model=gru")).config)
    assert len(digest) == 64
    assert config_sha256(validate(make_cfg("model=gru", "tracking.uri=sqlite:////x/y.db",
                                           "tracking.experiment=other")).config) == digest
    assert config_sha256(validate(make_cfg("model=gru", "resume=last")).config) == digest
    assert config_sha256(validate(make_cfg("model=gru", "seed=1")).config) != digest
    config = validate(make_cfg("model=gru")).config
    assert config_sha256(dict(reversed(list(config.items())))) == digest  # keys sorted


def test_resume_is_no_part_of_a_cell():
    cells = [("model=lstm", "resume=last"), ("model=gru", "resume=last")]
    assert split_resume(cells) == ("last", [("model=lstm",), ("model=gru",)])
    assert split_resume([("model=lstm",)]) == (None, [("model=lstm",)])
    with pytest.raises(ResumeRefused, match="resume: one sweep at a time, not a, b"):
        split_resume([("model=lstm", "resume=a"), ("model=lstm", "resume=b")])
    assert cell_key(("seed=1", "model=lstm", "+resume=x")) == "model=lstm seed=1"


def test_only_cells_not_finished_with_the_same_config_run_under_their_numbers():
    attempts = {0: Attempt("r0", "FINISHED", DIGESTS[GRID[0]]),
                1: Attempt("r1", "FAILED", DIGESTS[GRID[1]]),
                2: Attempt("r2", "FINISHED", "a digest of another config"),
                4: Attempt("r4", "FINISHED", DIGESTS[GRID[4]])}
    cells = list(reversed(CELLS))  # typed in another order: the same grid, the same numbers
    plan = plan_resume(found(attempts), cells, DIGESTS, "rnn-shapes", "last")
    assert plan.run == ((1, CELLS[1]), (2, CELLS[2]), (3, CELLS[3])) and plan.skipped == 2
    assert plan.groups() == [(1, [list(CELLS[1]), list(CELLS[2]), list(CELLS[3])])]
    assert plan.groups(max_batch_size=2) == [(1, [list(CELLS[1]), list(CELLS[2])]),
                                             (3, [list(CELLS[3])])]
    gaps = Plan(((0, CELLS[0]), (2, CELLS[2]), (3, CELLS[3])))
    assert gaps.groups() == [(0, [list(CELLS[0])]), (2, [list(CELLS[2]), list(CELLS[3])])]
    assert gaps.jobs() == "0, 2-3"
    everything = plan_resume(found(), CELLS, DIGESTS, "rnn-shapes", "p1")
    assert [job for job, _ in everything.run] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("case,message", [
    ("none, last", "resume: no earlier sweep of this grid in experiment rnn-shapes; run it "
                   "without resume first"),
    ("none, by id", "resume: no sweep with parent run p9 in experiment rnn-shapes"),
    ("another grid", "resume: this grid is not the grid of sweep p1: added 'model=gru seed=2'; "
                     "missing 'model=bilstm seed=0', 'model=gru seed=1'"),
    ("still running", "resume: sweep p1 is still running in process 42 on box; let it end, "
                      "or stop it, then resume"),
    ("running elsewhere", "resume: sweep p1 is still running in process 42 on box (another "
                          "host's: it cannot be checked from here)"),
    ("no grid", "resume: sweep p1 was recorded without its grid; run it again without resume"),
])
def test_a_resume_that_cannot_be_is_one_line(case, message):
    cells, which, sweep = CELLS, "last", found()
    if case.startswith("none"):
        sweep, which = None, ("last" if case == "none, last" else "p9")
    elif case == "another grid":
        cells = CELLS[:3] + [("model=gru", "seed=2")]
    elif case == "still running":
        sweep = found(status="RUNNING", alive=True)
    elif case == "running elsewhere":
        sweep = found(status="RUNNING", alive=None)
    elif case == "no grid":
        sweep = found(grid=None)
    digests = {cell_key(cell): "d" for cell in cells}
    with pytest.raises(ResumeRefused) as refused:
        plan_resume(sweep, cells, digests, "rnn-shapes", which)
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)
    if case == "still running":  # a parent RUNNING whose process is gone is resumed
        assert plan_resume(found(status="RUNNING", alive=False), cells, digests, "rnn-shapes",
                           which).run


def test_a_single_run_is_not_resumed(run_cli, tmp_path):
    result = run_cli("model=gru", "resume=last")
    assert result.returncode == 1
    assert result.stderr == ("resume: only a sweep resumes; add -m: python -m runner -m ... "
                             "resume=last\n")
    assert not (tmp_path / "outputs").exists()


# The CLI, with a line at exit saying whether TensorFlow was imported in the sweep's process
PROBE = """
import atexit, runpy, sys
atexit.register(lambda: print("TENSORFLOW", "tensorflow" in sys.modules))
sys.argv = ["runner", *sys.argv[1:]]
runpy.run_module("runner", run_name="__main__", alter_sys=True)
"""
# Four cells of one stack; the third long enough to be stopped in the middle
GRID_ARGS = ["model=lstm", "data.batch_size=64", "model.units=64", "data.timesteps=30,40,60000,50"]


def _statuses(tmp_path) -> list:
    try:
        return sqlite3.connect(tmp_path / "outputs" / "mlflow.db").execute(
            "select status from runs").fetchall()
    except sqlite3.OperationalError:
        return []


@pytest.mark.slow
def test_a_stopped_sweep_resumes_only_its_missing_cells(tmp_path, client, run_cli):
    sweep = start_cli(tmp_path, "-m", *GRID_ARGS)
    deadline = time.monotonic() + 300
    while sorted(_statuses(tmp_path)) != [("FINISHED",)] * 2 + [("RUNNING",)] * 2:
        assert sweep.poll() is None and time.monotonic() < deadline, sweep.communicate()
        time.sleep(0.2)
    sweep.send_signal(signal.SIGTERM)  # in the third cell: its run and the parent end KILLED
    assert sweep.wait(timeout=120) == 143
    [parent] = [run for run in runs_of(client) if "mlflow.parentRunId" not in run.data.tags]
    assert parent.info.status == "KILLED"
    parent_id = parent.info.run_id

    result = run_cli("-m", *GRID_ARGS, "resume=last")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == f"resume: sweep {parent_id}: 2 of 4 cells to run (jobs 2-3), 2 FINISHED kept"
    assert lines[1].startswith("[1/2] ") and lines[2].startswith("[2/2] ")
    runs = runs_of(client)
    assert [run for run in runs if "mlflow.parentRunId" not in run.data.tags] == [
        run for run in runs if run.info.run_id == parent_id]  # the same parent, no other
    children = [run for run in runs if run.info.run_id != parent_id]
    assert len(children) == 5
    killed = [run for run in children if run.info.status == "KILLED"]
    assert len(killed) == 1 and killed[0].data.tags["job.num"] == "2"
    current = [run for run in children if run.info.status == "FINISHED"]
    assert sorted(run.data.tags["job.num"] for run in current) == ["0", "1", "2", "3"]
    [again] = [run for run in current if run.data.tags["job.num"] == "2"]
    assert killed[0].data.tags["superseded_by"] == again.info.run_id
    assert again.data.tags["config.sha256"] == killed[0].data.tags["config.sha256"]
    assert again.info.run_name == killed[0].info.run_name  # resume is in no run's name
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    tags = parent.data.tags
    assert (tags["jobs.total"], tags["jobs.failed"], tags["jobs.skipped"], tags["jobs.ran"],
            tags["sweep.resumes"]) == ("4", "0", "2", "2", "1")
    summary = client.download_artifacts(parent_id, "summary.txt", str(tmp_path / "down"))
    rows = [line for line in open(summary).read().splitlines() if line[:1].isdigit()]
    assert [row.split()[0] for row in rows] == ["0", "1", "2", "3"]
    assert all("FINISHED" in row for row in rows)

    finished = run_script(tmp_path, PROBE, "-m", *GRID_ARGS, "resume=last")
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert finished.stdout.splitlines()[0] == (
        f"resume: every cell of sweep {parent_id} FINISHED with the same config; nothing to run")
    assert "TENSORFLOW False" in finished.stdout
    assert len(runs_of(client)) == 6  # nothing ran

    changed = [*GRID_ARGS[:-1], "data.timesteps=30,40,60000,70"]
    by_id = run_cli("-m", *changed, f"resume={parent_id}")
    assert by_id.returncode == 1
    assert by_id.stderr == (
        f"resume: this grid is not the grid of sweep {parent_id}: added 'data.batch_size=64 "
        f"data.timesteps=70 model.units=64 model=lstm'; missing 'data.batch_size=64 "
        f"data.timesteps=50 model.units=64 model=lstm'\n")
    last = run_cli("-m", *changed, "resume=last")
    assert last.returncode == 1
    assert last.stderr == ("resume: no earlier sweep of this grid in experiment rnn-shapes; "
                           "run it without resume first\n")
    assert len(runs_of(client)) == 6 and client.get_run(parent_id).info.status == "FINISHED"


@pytest.mark.slow
def test_a_changed_stack_runs_again_under_its_own_job_numbers(tmp_path, client, run_cli):
    """The same grid over a model file that changed since: the cells of that stack run again
    (two launches, jobs 0 and 2), the others are kept."""
    stack = tmp_path / "my_models" / "model" / "my_stack.yaml"
    stack.parent.mkdir(parents=True)
    stack.write_text((ROOT / "docs" / "my_stack.yaml").read_text())
    grid = [f"--config-dir={stack.parent.parent}", "-m", "data.timesteps=30,40",
            "model=my_stack,gru"]
    assert run_cli(*grid).returncode == 0
    before = {run.info.run_id for run in runs_of(client)}
    stack.write_text(stack.read_text().replace("units: 8", "units: 5"))
    result = run_cli(*grid, "resume=last")
    assert result.returncode == 0, result.stderr[-3000:]
    [parent] = [run for run in runs_of(client) if "mlflow.parentRunId" not in run.data.tags]
    assert result.stdout.splitlines()[0] == (
        f"resume: sweep {parent.info.run_id}: 2 of 4 cells to run (jobs 0, 2), 2 FINISHED kept")
    children = [run for run in runs_of(client) if run.info.run_id != parent.info.run_id]
    new = {run.data.tags["job.num"]: run for run in children if run.info.run_id not in before}
    assert sorted(new) == ["0", "2"]
    assert {run.data.params["model.units"] for run in new.values()} == {"5"}
    superseded = [run for run in children if "superseded_by" in run.data.tags]
    assert sorted(run.data.tags["superseded_by"] for run in superseded) == sorted(
        run.info.run_id for run in new.values())
    jobs = sorted(sorted(path.name for path in sweep.iterdir() if path.is_dir())
                  for sweep in (tmp_path / "outputs" / "multirun").glob("*/*"))
    assert jobs == [["0", "1", "2", "3"], ["0", "2"]]  # Hydra numbered them as before
    assert client.get_run(parent.info.run_id).data.tags["jobs.total"] == "4"


def test_the_store_finds_a_sweep_by_its_grid_and_says_whose_it_is(made_store, tmp_path):
    import os
    import socket

    from runner.identity import grid_sha256
    from runner.recording.requests import Tracking
    from runner.recording.sweeps import GRID, SweepStore

    store = SweepStore(Tracking(made_store, "rnn-shapes", str(tmp_path / "art")), os.getpid())
    cells = [(f"model.units={n}", f"seed={n}") for n in range(400)]
    grid = tuple(cell_key(cell) for cell in cells)  # past a tag's limit: kept as an artifact
    parent = store.create_sweep("a long sweep", {"sweep.dir": str(tmp_path)}, grid)
    sweep = store.find_sweep("last", grid_sha256(grid))
    assert sweep.parent == parent and sweep.grid == grid and sweep.status == "RUNNING"
    assert GRID not in store.client.get_run(parent.run_id).data.tags
    assert sweep.owner == f"process {os.getpid()} on {socket.gethostname()}"
    assert sweep.owner_alive is True and sweep.attempts == {}
    digests = {key: "d" for key in grid}
    with pytest.raises(ResumeRefused, match=f"still running in process {os.getpid()} on "):
        plan_resume(sweep, cells, digests, "rnn-shapes", "last")
    assert store.find_sweep("last", grid_sha256(grid[:-1])) is None
    assert store.find_sweep("0" * 32, "") is None
    store.client.set_terminated(parent.run_id, "KILLED")
    sweep = store.find_sweep(parent.run_id, "")
    assert len(plan_resume(sweep, cells, digests, "rnn-shapes", parent.run_id).run) == 400
    store.reopen_sweep(parent.run_id, 0, 400, 1)
    reopened = store.client.get_run(parent.run_id)
    assert reopened.info.status == "RUNNING"
    assert (reopened.data.tags["jobs.ran"], reopened.data.tags["sweep.resumes"]) == ("400", "1")
