"""What a job costs, known before it runs: mult-adds and memory from the oracle, a refusal for
what cannot fit, a warning for what takes long, and signals that stop a long prediction."""

import math
import os
import re
import signal
import time
from pathlib import Path

import pytest

from helpers import runs_of, start_cli, wait_until_running
from runner.cost import LONG_MULT_ADDS, human_bytes, job_cost, long_job_line
from runner.errors import ConfigError
from runner.shapes import plan_stack
from runner.validate import _check_fits, validate

CONFIG = {"precision": "float32", "reference_rows": 16,
          "data": {"batches": 1}, "timing": {"warmup": 1, "repeats": 5}}


def _layer(kind: str, **arguments) -> dict:
    return {"_target_": f"keras.layers.{kind}", **arguments}


# Each stack with its mult-adds counted by hand: a (m, k) @ (k, n) product is m * k * n, and
# every recurrent step multiplies its input and its state by each gate's kernels.
B, T, D = 4, 30, 6
HAND_COUNTED = [
    ("lstm", [_layer("LSTM", units=3)], (B, T, D),
     B * T * (4 * D * 3 + 4 * 3 * 3)),
    ("gru over simple_rnn", [_layer("SimpleRNN", units=5, return_sequences=True),
                             _layer("GRU", units=2)], (B, T, D),
     B * T * (D * 5 + 5 * 5) + B * T * (3 * 5 * 2 + 3 * 2 * 2)),
    ("bidirectional, then dense", [_layer("Bidirectional", layer=_layer("LSTM", units=3)),
                                   _layer("Dense", units=7)], (B, T, D),
     2 * B * T * (4 * D * 3 + 4 * 3 * 3) + B * (2 * 3) * 7),
    ("stacked cells", [_layer("RNN", cell=[_layer("LSTMCell", units=8),
                                           _layer("GRUCell", units=4)])], (B, T, D),
     B * T * ((4 * D * 8 + 4 * 8 * 8) + (3 * 8 * 4 + 3 * 4 * 4))),
    ("conv, norm, time-distributed dense",
     [_layer("Conv1D", filters=5, kernel_size=3, strides=2),
      _layer("BatchNormalization"),
      _layer("TimeDistributed", layer=_layer("Dense", units=2))], (B, T, D),
     B * 14 * (3 * D * 5) + B * 14 * 5 + B * 14 * 5 * 2),  # (30 - 3) // 2 + 1 = 14 windows
    ("embedding", [_layer("Embedding", input_dim=50, output_dim=8),
                   _layer("LSTM", units=3)], (B, T),
     0 + B * T * (4 * 8 * 3 + 4 * 3 * 3)),  # a lookup multiplies nothing
]


@pytest.mark.parametrize("name,layers,shape,mult_adds", HAND_COUNTED,
                         ids=[case[0] for case in HAND_COUNTED])
def test_mult_adds_and_bytes_agree_with_counts_made_by_hand(name, layers, shape, mult_adds):
    plan = plan_stack(layers, shape)
    cost = job_cost(layers, plan, CONFIG)
    assert cost.mult_adds == mult_adds
    assert cost.total_mult_adds == 7 * mult_adds  # one batch, one warm-up, five timed calls
    assert cost.weight_bytes == 4 * plan.param_count  # float32 variables
    assert [c.output_bytes for c in cost.layers] == [
        4 * sum(math.prod(s) for s in layer.outputs.values())
        for layer in plan.layers]
    assert cost.input_bytes == 4 * B * T * (shape[2] if len(shape) == 3 else 1)
    assert cost.drawn_bytes == 2 * cost.input_bytes  # float64 before the cast


def test_a_recurrent_loop_copies_its_input_twice_and_its_steps_three_times():
    layers = [_layer("LSTM", units=64, return_sequences=True)]
    cost = job_cost(layers, plan_stack(layers, (1024, 500, 16)), CONFIG)
    assert cost.recurrent_bytes == 2 * 4 * 1024 * 500 * 16 + 3 * 4 * 1024 * 500 * 64
    last_step = [_layer("LSTM", units=64)]
    assert job_cost(last_step, plan_stack(last_step, (1024, 500, 16)),
                    CONFIG).recurrent_bytes == 2 * 4 * 1024 * 500 * 16
    both = [_layer("Bidirectional", layer=_layer("LSTM", units=64, return_sequences=True))]
    assert job_cost(both, plan_stack(both, (1024, 500, 16)),
                    CONFIG).recurrent_bytes == 2 * cost.recurrent_bytes


def test_mixed_precision_halves_the_outputs_not_the_weights():
    layers = [_layer("LSTM", units=3, return_sequences=True)]
    plan = plan_stack(layers, (B, T, D))
    full = job_cost(layers, plan, CONFIG)
    half = job_cost(layers, plan, {**CONFIG, "precision": "mixed_float16"})
    assert half.activation_bytes * 2 == full.activation_bytes == 4 * B * T * 3
    assert half.weight_bytes == full.weight_bytes


def test_explain_shows_each_layers_cost_and_the_totals(make_cfg):
    from runner.explain import explain_config

    text = explain_config(make_cfg("model=bilstm", "mode=explain"), "model=bilstm").text
    lines = text.splitlines()
    assert lines[1].split() == ["#", "layer", "output", "shape", "params", "mult-adds",
                                "weights", "outputs"]
    row = lines[4]
    assert re.search(r"Bidirectional\(LSTM\)\s+output \(4, 6\)\s+120\s+11520\s+480 B\s+96 B$",
                     row), row
    assert "total mult-adds: 11520 a prediction, 80640 over the job's 7 predictions" in lines
    assert any(line.startswith("memory: about 6.0 KiB (weights 480 B, inputs 480 B")
               for line in lines)


def test_what_cannot_fit_is_refused_in_one_line_naming_the_knob(make_cfg):
    spec = validate(make_cfg("data.batch_size=1000000", "data.timesteps=10000",
                             "data.features=100", "mode=explain"))  # explain shows it
    assert human_bytes(spec.cost.input_bytes) == "3.6 TiB"
    assert human_bytes(spec.cost.drawn_bytes) == "7.3 TiB"  # NumPy's 7.28 TiB MemoryError
    with pytest.raises(ConfigError) as refused:
        _check_fits(spec.cost, spec.config["data"], available=int(22.1 * 2**30))
    assert str(refused.value) == ("data.batch_size=1000000: needs about 18.2 TiB, 22.1 GiB "
                                  "available; lower data.batch_size or data.timesteps")
    with pytest.raises(ConfigError, match=r"^data.batch_size=1000000: needs about 18.2 TiB, "
                                          r"[0-9.]+ [GMT]iB available"):
        validate(make_cfg("data.batch_size=1000000", "data.timesteps=10000",
                          "data.features=100"))


def test_a_long_job_is_named_with_how_to_make_it_smaller(make_cfg):
    spec = validate(make_cfg("data.batch_size=20000", "data.timesteps=3000", "model.units=512"))
    assert spec.cost.total_mult_adds > LONG_MULT_ADDS
    assert long_job_line(spec.cost, spec.config["data"]) == (
        "long job: 4.4e14 mult-adds over 7 predictions of data.batch_size=20000 x "
        "data.timesteps=3000, about 12.3 h at 1.0e10 mult-adds/s on 2 CPU cores; lower "
        "data.batch_size or data.timesteps or timing.repeats=0 (no timed calls) to make it "
        "smaller")
    assert long_job_line(validate(make_cfg()).cost, {}) is None  # the default job


@pytest.mark.slow
def test_a_job_that_cannot_fit_is_refused_before_any_run(run_cli, tmp_path):
    result = run_cli("data.batch_size=1000000", "data.timesteps=10000", "data.features=100")
    assert result.returncode == 1 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert re.fullmatch(r"data.batch_size=1000000: needs about 18.2 TiB, [0-9.]+ [GMT]iB "
                        r"available; lower data.batch_size or data.timesteps", line)
    assert list(tmp_path.iterdir()) == []  # no run, no store, no output folder


@pytest.mark.slow
def test_a_grid_refuses_the_cells_that_cannot_fit_up_front(run_cli, tmp_path):
    result = run_cli("-m", "data.batch_size=4,1000000", "data.timesteps=10000",
                     "data.features=100")
    assert result.returncode == 1
    assert "1 of 2 cells are invalid; no job was started" in result.stderr
    assert re.search(r"  data.batch_size=1000000 data.timesteps=10000 data.features=100: "
                     r"data.batch_size=1000000: needs about 18.2 TiB", result.stderr)
    assert not (tmp_path / "outputs" / "mlflow.db").exists()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_until_computing(process, seconds: float = 3.0, limit: float = 120.0) -> None:
    """Until the job has spent `seconds` of CPU time since its run started: its inputs are
    drawn and its model built in well under that, so it is then inside its first prediction."""
    start, deadline = _cpu_seconds(process.pid), time.monotonic() + limit
    while _cpu_seconds(process.pid) - start < seconds:
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)


# The long prediction: 2.7e12 mult-adds, tens of seconds a call on 2 cores
LONG = ["data.batch_size=512", "data.timesteps=20000", "model.units=256"]
# The ten-minute job (hours on 2 cores): it warns first
TEN_MINUTES = ["data.batch_size=20000", "data.timesteps=3000", "model.units=512"]


@pytest.mark.slow
@pytest.mark.parametrize("signum,overrides", [(signal.SIGINT, LONG), (signal.SIGTERM, LONG),
                                              (signal.SIGTERM, TEN_MINUTES)],
                         ids=["ctrl-c", "sigterm", "sigterm-after-the-warning"])
def test_a_signal_stops_a_long_prediction_at_once(tmp_path, client, signum, overrides):
    process = start_cli(tmp_path, *overrides)
    warning = process.stderr.readline()  # written before anything starts
    assert warning.startswith("long job: ") and warning.endswith("to make it smaller\n")
    wait_until_running(tmp_path, process)
    _wait_until_computing(process)
    signalled = time.monotonic()
    process.send_signal(signum)
    said = process.stderr.readline()
    told = time.monotonic() - signalled  # bounded: the main thread wakes every 0.1 s
    code = process.wait(timeout=60)
    exited = time.monotonic() - signalled  # also waits for the recording process's last write
    name = signal.Signals(signum).name
    assert code == 128 + signum
    assert said == (f"lstm return_sequences=false -> KILLED: Interrupted: {name} received "
                    f"(exit code {code})\n")
    assert told < 2.0, told
    # The exit waits for the recording process to end the run, and for the kernel to free the
    # job's memory: 0.5 s on 2 cores at load 4, 2.5-8 s at load 8-15 (benchmarks/RESULTS.md).
    assert exited < 30.0, exited
    print(f"{name}: the line after {told:.2f} s, exit after {exited:.2f} s")
    [run] = runs_of(client)
    assert run.info.status == "KILLED"
    assert run.data.tags["error"] == f"Interrupted: {name} received (exit code {code})"
    assert run.data.metrics["model.mult_adds"] > 10**12  # what was known is recorded
    assert run.data.metrics["memory.estimate_mb"] > 0
