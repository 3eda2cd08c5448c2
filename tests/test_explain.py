"""mode=explain: the oracle's tables without TensorFlow, MLflow or a store."""

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import PROBE, explain, runs_of


def test_explain_imports_no_tensorflow_and_opens_no_store(tmp_path):
    result = explain(tmp_path, "model=bilstm", "return_state=true")
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout
    assert "0  Bidirectional(LSTM)  output (4, 6), forward_h (4, 3), forward_c (4, 3), " \
           "backward_h (4, 3), backward_c (4, 3)  120" in result.stdout
    assert "total params: 120" in result.stdout
    assert not (tmp_path / "outputs" / "mlflow.db").exists()


@pytest.mark.slow
def test_explain_prints_what_a_run_records(tmp_path, run_cli, client):
    shown = explain(tmp_path, "model=lambda_lstm", "return_state=true")
    assert "outputs: output (4, 1), state_h (4, 20), state_c (4, 20)" in shown.stdout
    assert "total params: 5061" in shown.stdout
    assert run_cli("model=lambda_lstm", "return_state=true").returncode == 0
    [run] = runs_of(client)
    tags = run.data.tags
    assert (tags["shape.output"], tags["shape.state_h"], tags["shape.state_c"]) == (
        "(4, 1)", "(4, 20)", "(4, 20)")
    assert run.data.metrics["param_count"] == 5061


def test_an_invalid_cell_is_reported_and_the_others_print(tmp_path):
    result = explain(tmp_path, "-m", "model=lambda_lstm",
                     "model.layers.1.return_sequences=true,false", "return_state=false,true")
    assert result.returncode == 1
    assert "HEAVY []" in result.stdout
    assert result.stdout.count("total params: 5061") == 2
    assert result.stdout.count("-> invalid: model.layers.2: LSTM needs a 3-D input") == 2
    assert "set model.layers.1.return_sequences=true" in result.stdout
    assert "2 of 4 cells cannot be built" in result.stderr


def test_an_explain_sweep_as_typed_prints_every_cell_and_leaves_no_files(tmp_path):
    result = subprocess.run([sys.executable, "-m", "runner", "-m", "sweep=seed", "mode=explain"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("total params:") == 8
    assert "bilstm return_sequences=true  [model=bilstm,return_sequences=true]" in result.stdout
    assert list(tmp_path.iterdir()) == []  # no store, no outputs/ directory


STACKS = ("bilstm, gru, guide_bidirectional, guide_cells, guide_embedding_lstm, "
          "guide_encoder_decoder, guide_gru_simple_rnn, guide_stateful, lambda_lstm, lstm, "
          "simple_rnn")


def test_an_explain_sweep_names_every_bad_cell_and_leaves_no_files(tmp_path):
    """Composed and checked as a sweep that runs is: a line a bad cell, and nothing explained."""
    result = explain(tmp_path, "-m", "model=transformer,lstmm")
    assert result.returncode == 1
    assert result.stdout == "HEAVY []\n"
    assert result.stderr == (
        "2 of 2 cells are invalid; no job was started:\n"
        f"  model=transformer mode=explain: model: no stack named 'transformer'; available: "
        f"{STACKS}\n"
        f"  model=lstmm mode=explain: model: no stack named 'lstmm' (did you mean lstm?); "
        f"available: {STACKS}\n")
    result = explain(tmp_path, "-m", "model=lstm", "data.batch_size=two,x")
    assert result.returncode == 1 and "total params" not in result.stdout
    assert result.stderr == (
        "2 of 2 cells are invalid; no job was started:\n"
        "  model=lstm data.batch_size=two mode=explain: data.batch_size: must be an integer, "
        "got 'two'\n"
        "  model=lstm data.batch_size=x mode=explain: data.batch_size: must be an integer, "
        "got 'x'\n")
    result = explain(tmp_path, "-m", "model=lstm,transformer")
    assert result.returncode == 1 and "total params" not in result.stdout
    assert result.stderr.startswith("1 of 2 cells are invalid; no job was started:\n"
                                    "  model=transformer mode=explain: model: no stack named")
    assert list(tmp_path.iterdir()) == []  # no outputs/multirun/.../multirun.yaml


def test_explain_refuses_a_value_no_run_could_use_as_a_run_does(tmp_path):
    result = explain(tmp_path, "data.batch_size=0")
    assert result.returncode == 1 and result.stdout == "HEAVY []\n"
    assert result.stderr == "data.batch_size: must be a positive integer, got 0\n"
    assert list(tmp_path.iterdir()) == []


def test_help_is_the_runners(tmp_path):
    result = subprocess.run([sys.executable, "-m", "runner", "--help"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("runner: Keras recurrent stacks described in Hydra config.")
    assert "powered by Hydra" not in text
    for line in (  # the knobs with their comments from conf/config.yaml
            "  return_sequences=false       output recurrent layer: every timestep (true) or "
            "the last one (false)",
            "  merge_mode=concat            Bidirectional: concat | sum | mul | ave | none",
            "  data.batch_size=4            B: sequences in a batch",
            # the stacks with the picture that opens each model file, the sweeps
            "  bilstm               Input(T, D) -> Bidirectional(LSTM(units)) -> (B, 2*units) | "
            "(B, T, 2*units) with concat",
            "  seed                 The notebook in one command: four stacks x return_sequences",
            "  python -m runner model=bilstm return_sequences=true"):
        assert line in text.splitlines(), line


def test_cfg_and_help_import_neither_tensorflow_nor_mlflow(tmp_path):
    for flag in ("--cfg", "--help"):
        args = [flag, "job"] if flag == "--cfg" else [flag]
        result = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=tmp_path,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "HEAVY []" in result.stdout
    assert "return_sequences: false" in subprocess.run(
        [sys.executable, "-m", "runner", "--cfg", "job"], cwd=tmp_path, capture_output=True,
        text=True, timeout=120).stdout


def test_the_runner_console_script_is_the_same_app(tmp_path):
    runner = Path(sys.executable).parent / "runner"
    result = subprocess.run([str(runner), "mode=explain", "model=gru", "return_sequences=true"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "0  GRU    output (4, 30, 3)  54" in result.stdout
    completion = subprocess.run([str(runner), "-sc", "install=bash"], cwd=tmp_path,
                                capture_output=True, text=True, timeout=120)
    assert "complete -p runner" in completion.stdout
