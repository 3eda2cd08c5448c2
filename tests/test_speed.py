"""Speed and memory in every run: the first call apart, warm calls timed, throughput, peak
memory, and the knobs that change speed (jit_compile, precision). Relations, never thresholds."""

import json

import pytest

from helpers import parent_and_children, runs_of
from runner.validate import validate


def _run(make_cfg, tmp_path, *overrides):
    from runner.experiment import run_experiment

    result = run_experiment(validate(make_cfg(*overrides)), tmp_path / "artifacts")
    assert result.error is None, result.error.line
    return result


@pytest.mark.slow
def test_a_timed_run_records_every_figure(run_cli, client):
    result = run_cli("model=lstm", "model.units=64", "data.batch_size=64", "data.timesteps=100",
                     "timing.repeats=7")
    assert result.returncode == 0, result.stderr
    [run] = runs_of(client)
    metrics, tags = run.data.metrics, run.data.tags
    assert (metrics["predict.min_seconds"] <= metrics["predict.median_seconds"]
            <= metrics["predict.first_seconds"])
    assert metrics["predict.iqr_seconds"] >= 0
    assert metrics["throughput.sequences_per_second"] == pytest.approx(
        64 / metrics["predict.median_seconds"])
    assert metrics["throughput.timesteps_per_second"] == pytest.approx(
        64 * 100 / metrics["predict.median_seconds"])
    assert "predict_seconds" not in metrics  # a cold call's figure, retired
    assert metrics["memory.peak_rss_mb"] >= metrics["process.rss_mb"] > 0
    assert metrics["model.weights_bytes"] == metrics["param_count"] * 4 == 16896 * 4  # float32
    assert run.data.params["timing.repeats"] == "7" and run.data.params["timing.warmup"] == "1"
    assert tags["jit.compiled"] == str(tags["device.kind"] == "GPU").lower()  # Keras's "auto"
    assert tags["cudnn.used"] == "false" or tags["device.kind"] == "GPU"
    assert tags["tf.intra_op_threads"].isdigit() and tags["tf.inter_op_threads"].isdigit()
    assert int(tags["cpu.cores"]) >= 1 and tags["device.name"]


def test_no_timing_when_repeats_is_zero(make_cfg, tmp_path):
    result = _run(make_cfg, tmp_path, "model=gru", "timing.repeats=0")
    assert result.metrics["predict.first_seconds"] > 0
    assert not any(key.startswith(("throughput.", "predict.median")) for key in result.metrics)


@pytest.mark.parametrize("warmup,repeats,calls", [(1, 0, 0), (3, 0, 0), (2, 4, 6), (0, 3, 3)])
def test_timing_makes_warmup_then_repeats_calls_and_none_when_off(warmup, repeats, calls):
    from runner.timing import time_calls

    made = []
    seconds = time_calls(lambda: made.append(len(made)), warmup, repeats)
    assert len(made) == calls and len(seconds) == repeats  # repeats=0: no warm-up call either
    assert all(second >= 0 for second in seconds)


@pytest.mark.parametrize("typed,recorded", [
    ("auto", "auto"), ("true", "true"), ("false", "false"), ("True", "true")])
def test_jit_compile_is_recorded_as_the_project_spells_it(make_cfg, tmp_path, typed, recorded):
    from runner.experiment import planned_result

    spec = validate(make_cfg(f"jit_compile={typed}"))
    assert spec.config["jit_compile"] == {"auto": "auto", "true": True, "false": False}[recorded]
    assert planned_result(spec, tmp_path).params["jit_compile"] == recorded


@pytest.mark.parametrize("overrides,tags", [
    (["precision=mixed_bfloat16"], {}),
    (["precision=mixed_float16", "model=bilstm"], {}),
    (["jit_compile=true"], {"jit.compiled": "true"}),
    (["jit_compile=false"], {"jit.compiled": "false"}),
])
def test_reduced_precision_and_xla_runs_pass_their_reference_checks(make_cfg, tmp_path,
                                                                    overrides, tags):
    result = _run(make_cfg, tmp_path, *overrides, "return_sequences=true")
    assert {key: result.tags[key] for key in tags} == tags
    jit = tags.get("jit.compiled", "auto")  # the param and config.yaml as the user typed it
    assert result.params["jit_compile"] == jit
    assert f"\njit_compile: {jit}\n" in (result.artifact_dir / "config.yaml").read_text()
    config = json.dumps(result.params)
    precision = result.params["precision"]
    tolerance = float(result.params[f"tolerances.{precision}"])
    assert float(result.params["tolerance"]) == tolerance, config  # follows the precision
    assert result.metrics["oracle.max_abs_err"] <= tolerance
    if precision != "float32":  # the error a reduced precision costs, measured and recorded
        assert result.metrics["oracle.max_abs_err"] > 1e-5


def test_the_throughput_figure_draws_every_timed_cell_fastest_first_with_its_spread():
    from runner.plots import throughput_figure

    def row(overrides, batch, median, iqr):
        return {"overrides": overrides, "throughput": batch / median, "median_seconds": median,
                "iqr_seconds": iqr}

    rows = [row("model=lstm,data.batch_size=32", 32, 0.010, 0.002),
            row("model=gru,data.batch_size=128", 128, 0.020, 0.0),
            {"overrides": "model=lstm,data.batch_size=64", "throughput": "",  # not timed
             "median_seconds": "", "iqr_seconds": ""},
            row("model=gru,data.batch_size=32", 32, 0.004, 0.010)]  # quartiles wider than it
    [axes] = throughput_figure(rows).axes
    assert axes.get_xscale() == "log"
    assert [label.get_text() for label in axes.get_yticklabels()] == [
        "model=gru,data.batch_size=32", "model=gru,data.batch_size=128",
        "model=lstm,data.batch_size=32"]  # 8000, 6400 and 3200 sequences a second
    assert axes.yaxis_inverted()  # the fastest on top
    [(marks, _, (spread,))] = axes.containers  # one errorbar: a marker and a bar a cell
    assert list(marks.get_xdata()) == pytest.approx([8000, 6400, 3200])
    assert list(marks.get_ydata()) == [segment[0][1] for segment in spread.get_segments()] == [
        0, 1, 2]
    # each bar spans the calls' quartiles: batch / (median ± iqr/2), the fast end at most 20x
    ends = [end for segment in spread.get_segments() for end in (segment[0][0], segment[1][0])]
    assert ends == pytest.approx([32 / 0.009, 32 / 0.0002, 6400, 6400, 32 / 0.011, 32 / 0.009])


def test_the_speed_sweep_is_explained_without_tensorflow(run_cli):
    result = run_cli("-m", "sweep=speed", "mode=explain")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("total params:") == 16
    assert result.stdout.count("total params: 20736") == 8  # LSTM(64) over 16 features
    assert result.stdout.count("total params: 15744") == 8  # GRU(64)


@pytest.mark.slow
def test_the_speed_sweep_ranks_its_cells_by_throughput(run_cli, client, tmp_path):
    result = run_cli("-m", "sweep=speed")
    assert result.returncode == 0, result.stderr[-2000:]
    parent, children = parent_and_children(client)
    assert len(children) == 16 and {c.info.status for c in children} == {"FINISHED"}
    assert {c.data.params["model.layers.0.use_cudnn"] for c in children} == {"auto", "false"}
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"throughput.png", "summary.json", "grid.png"} <= artifacts
    local = client.download_artifacts(parent.info.run_id, "summary.json", str(tmp_path))
    summary = json.loads(open(local).read())
    rows = [dict(zip(summary["columns"], row)) for row in summary["data"]]
    speeds = [row["throughput"] for row in rows]
    assert speeds == sorted(speeds, reverse=True) and len(speeds) == 16
    by_run = {c.info.run_name: c.data.metrics["throughput.sequences_per_second"]
              for c in children}
    assert {row["overrides"]: row["throughput"] for row in rows} == pytest.approx(by_run)
    table = [line for line in result.stdout.splitlines() if line[:1].isdigit()]
    assert [int(line.split()[0]) for line in table] == [row["job"] for row in rows]
    # the console says where both figures are: in the UI, and as files beside the store
    ui = (f"http://127.0.0.1:5000/#/experiments/{parent.info.experiment_id}/runs/"
          f"{parent.info.run_id}")
    files = f"outputs/mlartifacts/{parent.info.run_id}/artifacts"
    assert result.stdout.splitlines()[-2:] == [
        f"  figure:  {ui}/artifacts/grid.png   (file {files}/grid.png)",
        f"  figure:  {ui}/artifacts/throughput.png   (file {files}/throughput.png)"]
    assert (tmp_path / files / "throughput.png").is_file()
