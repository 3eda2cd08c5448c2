"""A sweep read back (`runner.results`, `sweep_frame`): sweeps built through the store itself,
in-process, as a sweep's jobs would record them."""

import json
import os

import pytest

from runner.recording.requests import Tracking
from runner.result import Failure, JobResult

START = 1_700_000_000_000  # runs start a second apart, in the order they are made


@pytest.fixture
def store(made_store, store_uri, tmp_path):
    from runner.recording.sweeps import SweepStore

    return SweepStore(Tracking(store_uri, "rnn-shapes", str(tmp_path / "mlartifacts")),
                      os.getpid())


def _sweep(store, tmp_path, cells: list) -> str:
    """A closed sweep of `cells`, (job, {knob: value}, metrics, error) each; returns its id."""
    from runner.identity import cell_key

    names = {job: ",".join(f"{k}={v}" for k, v in sorted(knobs.items()))
             for job, knobs, _, _ in cells}
    grid = tuple(cell_key(name.split(",")) for name in dict.fromkeys(names.values()))
    parent = store.create_sweep("a sweep", {"sweep.dir": str(tmp_path)}, grid).run_id
    for job, knobs, metrics, error in cells:
        started = START + 1000 * len(os.listdir(tmp_path))
        (tmp_path / f"run{started}").mkdir()
        run = store.start_run(names[job], {"job.num": str(job)}, parent, started).run_id
        shape = "(4, 30, 3)" if knobs.get("return_sequences") == "true" else "(4, 3)"
        result = JobResult(label=names[job], params={}, artifact_dir=tmp_path / f"run{started}",
                           tags={"shape.output": shape}, metrics=metrics,
                           error=Failure.of(RuntimeError("injected")) if error else None)
        params = {"data.batch_size": "4", "return_sequences": "false", **knobs}
        store.finish_run(run, params, result, started + 500)
    store.close_sweep(parent, None, ())
    return parent


def _metrics(param_count: int, mean: float) -> dict:
    return {"param_count": param_count, "output.mean": mean, "oracle.max_abs_err": 1e-7,
            "output.std": 0.5, "job.seconds": 0.25, "model.mult_adds": 120.0 * param_count,
            "memory.estimate_mb": 0.5}


def test_a_seed_sweep_and_a_grid_of_two_knobs_read_back_typed(store, store_uri, tmp_path,
                                                             client, capsys):
    from runner.results import main, pivot, sweep_frame

    seeds = _sweep(store, tmp_path, [
        (0, {"model": "lstm", "seed": "0"}, _metrics(60, 0.1), False),
        (1, {"model": "lstm", "seed": "1"}, _metrics(60, 0.2), True),  # run again below
        (2, {"model": "gru", "seed": "0"}, _metrics(54, -0.5), False),
        (3, {"model": "gru", "seed": "1"}, _metrics(54, -0.3), False),
        (1, {"model": "lstm", "seed": "1"}, _metrics(60, 0.3), False)])
    frame = sweep_frame(seeds, uri=store_uri)
    assert list(frame.columns) == ["job", "model", "seed", "shape.output", "status",
                                   "param_count", "model.mult_adds", "memory.estimate_mb",
                                   "oracle.max_abs_err", "output.mean",
                                   "output.std", "job.seconds", "run_id"]
    assert [str(frame[c].dtype) for c in ("job", "seed", "param_count", "output.mean")] == [
        "int64", "int64", "int64", "float64"]
    assert frame.job.tolist() == [0, 1, 2, 3] and set(frame.status) == {"FINISHED"}
    assert frame[frame.seed == 1]["output.mean"].tolist() == [0.3, -0.3]  # the latest attempt
    assert frame.sort_values("param_count").model.tolist()[:2] == ["gru", "gru"]
    assert frame["model.mult_adds"].tolist() == [7200.0, 7200.0, 6480.0, 6480.0]
    # the parent's summary: each cell without its seed, over its seeds
    text = open(client.download_artifacts(seeds, "summary.txt", str(tmp_path / "a"))).read()
    over = text.split("over seeds: mean ± standard deviation of each cell's FINISHED runs\n")[1]
    lines = over.splitlines()
    assert lines[0].split() == ["cell", "seeds", "output.mean", "output.std", "output.abs_max",
                                "oracle.max_abs_err", "job.seconds"]
    assert lines[2].split()[:5] == ["model=lstm", "2", "0.2", "±", "0.14"]
    assert lines[3].split()[:5] == ["model=gru", "2", "-0.4", "±", "0.14"]

    grid = _sweep(store, tmp_path, [
        (job, {"model": model, "return_sequences": sequences}, _metrics(60, 0.0), False)
        for job, (model, sequences) in enumerate(
            [(m, s) for m in ("lstm", "gru") for s in ("false", "true")])])
    frame = sweep_frame(uri=store_uri)  # the last sweep
    assert frame.attrs["sweep"] == grid and frame.attrs["knobs"] == ["model", "return_sequences"]
    assert str(frame.return_sequences.dtype) == "bool"
    assert frame[frame.return_sequences].job.tolist() == [1, 3]
    table = pivot(frame, "model", "return_sequences")
    assert table.to_dict("list") == {"model": ["lstm", "gru"],
                                     "return_sequences=false": ["(4, 3)", "(4, 3)"],
                                     "return_sequences=true": ["(4, 30, 3)", "(4, 30, 3)"]}

    main(["--pivot", "model", "return_sequences", "--uri", store_uri])
    assert capsys.readouterr().out.splitlines() == [
        f"sweep {grid} (a sweep): FINISHED, 4 cells",
        "model  return_sequences=false  return_sequences=true",
        "-----  ----------------------  ---------------------",
        "lstm   (4, 3)                  (4, 30, 3)",
        "gru    (4, 3)                  (4, 30, 3)"]
    main([seeds, "--format", "csv", "--uri", store_uri])
    csv = capsys.readouterr().out.splitlines()
    assert csv[0].startswith("job,model,seed,shape.output,status,param_count,")
    assert csv[1].startswith('0,lstm,0,"(4, 3)",FINISHED,60,')
    main(["--format", "json", "--uri", store_uri])
    records = json.loads(capsys.readouterr().out)
    assert [(r["model"], r["return_sequences"]) for r in records][:2] == [
        ("lstm", False), ("lstm", True)]
    main(["--pivot", "model", "return_sequences", "--format", "markdown", "--uri", store_uri])
    assert capsys.readouterr().out.splitlines()[:3] == [
        "| model | return_sequences=false | return_sequences=true |", "| --- | --- | --- |",
        "| lstm | (4, 3) | (4, 30, 3) |"]
    with pytest.raises(SystemExit):
        main(["--pivot", "model", "seed", "--uri", store_uri])
    assert capsys.readouterr().err == ("--pivot: seed is not a column of this sweep; its knobs: "
                                       "model, return_sequences\n")


def test_a_timed_sweep_reads_back_its_speed_as_floats(store, store_uri, tmp_path, client):
    from runner.results import sweep_frame

    def timed(median: float, mean: float) -> dict:  # batches of 4
        return {**_metrics(60, mean), "predict.median_seconds": median,
                "throughput.sequences_per_second": 4 / median}

    sweep = _sweep(store, tmp_path, [
        (0, {"model": "lstm", "seed": "0"}, timed(0.002, 0.1), False),
        (1, {"model": "lstm", "seed": "1"}, timed(0.004, 0.3), False),
        (2, {"model": "gru", "seed": "0"}, _metrics(54, -0.5), True),  # failed: never timed
        (3, {"model": "gru", "seed": "1"}, timed(0.001, -0.3), False)])
    frame = sweep_frame(sweep, uri=store_uri)
    assert list(frame.columns)[-3:] == ["predict.median_seconds",
                                        "throughput.sequences_per_second", "run_id"]
    speed = frame[["predict.median_seconds", "throughput.sequences_per_second"]]
    assert [str(dtype) for dtype in speed.dtypes] == ["float64", "float64"]
    assert speed.fillna(-1).values.tolist() == [[0.002, 2000.0], [0.004, 1000.0], [-1, -1],
                                                [0.001, 4000.0]]
    fastest = frame.sort_values("throughput.sequences_per_second", ascending=False)
    assert fastest.job.tolist() == [3, 0, 1, 2]
    # the parent's summary over seeds: the speed metrics too, over each cell's FINISHED runs
    text = open(client.download_artifacts(sweep, "summary.txt", str(tmp_path / "a"))).read()
    lines = text.split("over seeds: mean ± standard deviation of each cell's FINISHED runs\n")[
        1].splitlines()
    assert lines[0].split()[-2:] == ["predict.median_seconds", "throughput.sequences_per_second"]
    assert lines[2].split()[:2] == ["model=lstm", "2"]
    assert lines[2].split()[-6:] == ["0.003", "±", "0.0014", "1.5e+03", "±", "7.1e+02"]
    assert lines[3].split()[:2] + lines[3].split()[-2:] == ["model=gru", "1", "0.001", "4e+03"]


def test_a_closed_sweep_reads_back_from_its_parents_records_as_from_its_runs(
        store, store_uri, tmp_path, client):
    """A sweep that closed is read from the one file its parent keeps (cells.json), not from a
    thousand runs: the same frame, a run again included; a sweep still running, from its runs."""
    import pandas as pd

    from runner.recording.summary import latest_attempts
    from runner.results import CELLS_FILE, _frame, cell_records, sweep_frame

    sweep = _sweep(store, tmp_path, [
        (0, {"model": "lstm", "data.timesteps": "5"}, _metrics(60, 0.1), False),
        (1, {"model": "lstm", "data.timesteps": "9"}, _metrics(60, 0.2), True),
        (2, {"model": "gru", "data.timesteps": "5"}, _metrics(54, -0.5), False),
        (1, {"model": "lstm", "data.timesteps": "9"}, _metrics(60, 0.3), False)])
    assert CELLS_FILE in [artifact.path for artifact in client.list_artifacts(sweep)]
    children = client.search_runs([client.get_run(sweep).info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{sweep}'")
    from_runs = _frame(pd, cell_records(latest_attempts(children)[0]))
    kept = sweep_frame(sweep, uri=store_uri)
    pd.testing.assert_frame_equal(kept, from_runs)
    assert kept["data.timesteps"].tolist() == [5, 9, 5] and kept["output.mean"][1] == 0.3
    assert kept.attrs["knobs"] == ["data.timesteps", "model"]
    client.update_run(sweep, status="RUNNING")  # reopened, as a resume does: its runs speak
    client.delete_tag(children[0].info.run_id, "shape.output")
    assert sweep_frame(sweep, uri=store_uri)["shape.output"].isna().sum() == 1


def test_no_store_no_sweep_is_one_line(tmp_path, capsys):
    from runner.results import main

    with pytest.raises(SystemExit) as exit_:
        main(["--uri", f"sqlite:///{tmp_path}/outputs/mlflow.db"])
    assert exit_.value.code == 1
    assert capsys.readouterr().err == (f"results: no store at {tmp_path}/outputs/mlflow.db; "
                                       "run a sweep first\n")
    assert not (tmp_path / "outputs").exists()


def test_a_pivot_cell_of_several_shapes_stays_one_markdown_cell():
    """Cells where another knob varies hold several shapes joined by ` | `: escaped, each row
    of the Markdown table keeps as many cells as its header."""
    import pandas as pd

    from runner.results import pivot, render

    frame = pd.DataFrame({"model": ["bilstm"] * 4, "return_sequences": [False, False, True, True],
                          "merge_mode": ["concat", "none"] * 2,
                          "shape.output": ["(4, 6)", "(4, 3)", "(4, 30, 6)", "(4, 30, 3)"]})
    table = pivot(frame, "model", "return_sequences")
    assert table.to_dict("list") == {"model": ["bilstm"],
                                     "return_sequences=false": ["(4, 6) | (4, 3)"],
                                     "return_sequences=true": ["(4, 30, 6) | (4, 30, 3)"]}
    assert render(table, "markdown").splitlines() == [
        "| model | return_sequences=false | return_sequences=true |", "| --- | --- | --- |",
        r"| bilstm | (4, 6) \| (4, 3) | (4, 30, 6) \| (4, 30, 3) |"]
    lines = render(pd.DataFrame({"note": ["two\nlines"]}), "markdown").splitlines()
    assert lines == ["| note |", "| --- |", "| two<br>lines |"]


def test_a_finished_sweep_is_found_for_a_resume_from_its_parents_records(store, tmp_path):
    """A resume of a sweep that closed FINISHED reads its parent's records, not its runs: the
    same attempts and rows; its runs are listed where a resume runs cells again."""
    from runner.identity import cell_key, grid_sha256

    sweep = _sweep(store, tmp_path, [
        (0, {"model": "lstm", "seed": "0"}, _metrics(60, 0.1), False),
        (1, {"model": "gru", "seed": "0"}, _metrics(54, 0.2), False),
        (1, {"model": "gru", "seed": "0"}, _metrics(54, 0.3), False)])  # run again
    digest = grid_sha256([cell_key(["model=lstm", "seed=0"]), cell_key(["model=gru", "seed=0"])])
    kept, listed = store.find_sweep(sweep, digest), store.find_sweep(sweep, digest, listed=True)
    assert kept.runs is None and len(listed.runs) == 3
    assert kept.attempts == listed.attempts and kept.rows == listed.rows
    assert [row["overrides"] for row in kept.rows] == ["model=lstm,seed=0", "model=gru,seed=0"]
    assert kept.rows[1]["metrics"]["output.mean"] == 0.3
    assert (kept.parent, kept.status, kept.grid) == (listed.parent, "FINISHED", listed.grid)
