"""Data follows the model: each input is drawn at the shape its model file declares, typed as a
user types it; data.timesteps / data.features and +data.inputs.NAME.* fill only open axes."""

import pytest

from helpers import runs_of

OWN = """\
# Input(30, 4) -> LSTM(5)                                   -> (B, 5)
input_shape: [30, 4]
layers:
  - _target_: keras.layers.LSTM
    units: 5
"""

ENCODER_DECODER = """\
# encoder (30, 2) -> LSTM(8, states) --initial_state--> decoder (10, 3) -> LSTM(8, seq) -> Dense(4)
inputs:
  encoder: [30, 2]
  decoder: [10, 3]
layers:
  - name: encoder_lstm             # (B, 8), and its states h (B, 8), c (B, 8)
    input: encoder
    _target_: keras.layers.LSTM
    units: 8
    return_state: true
  - name: decoder_lstm             # (B, 10, 8), started from the encoder's states
    input: decoder
    _target_: keras.layers.LSTM
    units: 8
    initial_state: encoder_lstm
    return_sequences: true
  - _target_: keras.layers.Dense   # (B, 10, 4)
    units: 4
"""

IDS_AND_FLOATS = """\
# words ids -> Embedding(50, 8) -> GRU(6, states) --initial_state--> signal (T, 3) -> GRU(6) -> Dense(2)
inputs:
  words: [null]                    # token ids, any number of timesteps
  signal: [null, 3]                # floats, any number of timesteps
layers:
  - name: embedding                # (B, T, 8)
    input: words
    _target_: keras.layers.Embedding
    input_dim: 50
    output_dim: 8
  - name: reader                   # (B, 6), and its state (B, 6)
    _target_: keras.layers.GRU
    units: 6
    return_state: true
  - name: follower                 # (B, 6), started from the reader's state
    input: signal
    _target_: keras.layers.GRU
    units: 6
    initial_state: reader
  - _target_: keras.layers.Dense   # (B, 2)
    units: 2
"""


def own_stack(tmp_path, name: str, text: str) -> str:
    """DIR/model/NAME.yaml written as a user writes it; returns `--config-dir=DIR`."""
    (tmp_path / "mine" / "model").mkdir(parents=True, exist_ok=True)
    (tmp_path / "mine" / "model" / f"{name}.yaml").write_text(text)
    return f"--config-dir={tmp_path / 'mine'}"


def finished_and_agreeing(client) -> object:
    [run] = runs_of(client)
    assert run.info.status == "FINISHED"
    assert run.data.tags["shape.match"] == "true"
    assert float(run.data.metrics["oracle.max_abs_err"]) <= 1e-5
    return run


def test_the_shape_a_model_declares_is_the_shape_explain_prints(tmp_path, run_cli):
    config_dir = own_stack(tmp_path, "mine", OWN)
    shown = run_cli(config_dir, "model=mine", "mode=explain")
    assert shown.returncode == 0, shown.stderr
    assert "-  Input  input (4, 30, 4)  0" in shown.stdout


def test_one_input_of_several_drawn_at_its_own_length(run_cli):
    shown = run_cli("model=guide_encoder_decoder", "+data.inputs.decoder_tokens.timesteps=10",
                    "mode=explain")
    assert shown.returncode == 0, shown.stderr
    assert "Input encoder_tokens (token ids < 1000)" in shown.stdout
    assert "Input decoder_tokens (token ids < 2000)" in shown.stdout
    assert "input (4, 30)" in shown.stdout and "input (4, 10)" in shown.stdout
    [decoder_embedding] = [line.split() for line in shown.stdout.splitlines()
                           if line.startswith("2  Embedding decoder_embedding")]
    assert decoder_embedding[3:8] == ["decoder_tokens", "output", "(4,", "10,", "64)"]


def test_a_size_typed_for_an_axis_no_input_has_is_named_not_taken(make_cfg):
    from runner.validate import validate

    typed = ["model=lambda_lstm", "data.features=3"]
    spec = validate(make_cfg(*typed), typed)
    assert spec.inputs == {"inputs": (4, 30)}
    assert spec.unused == ("data.features=3",)


@pytest.mark.slow
def test_an_own_stack_on_30_by_4_runs_with_no_data_keys(tmp_path, run_cli, client):
    result = run_cli(own_stack(tmp_path, "mine", OWN), "model=mine")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "mine -> output (4, 5)"
    run = finished_and_agreeing(client)
    assert run.data.tags["shape.input"] == "(4, 30, 4)"
    assert run.data.params["data.features"] == "1"  # the fill-in, unused: the model says 4


@pytest.mark.slow
def test_an_encoder_on_30_by_2_starts_a_decoder_on_10_by_3(tmp_path, run_cli, client):
    result = run_cli(own_stack(tmp_path, "encdec", ENCODER_DECODER), "model=encdec")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "encdec -> output (4, 10, 4)"
    run = finished_and_agreeing(client)
    assert run.data.tags["shape.input.encoder"] == "(4, 30, 2)"
    assert run.data.tags["shape.input.decoder"] == "(4, 10, 3)"
    assert run.data.tags["shape.output"] == "(4, 10, 4)"


@pytest.mark.slow
def test_token_ids_and_floats_each_drawn_at_their_own_length(tmp_path, run_cli, client):
    result = run_cli(own_stack(tmp_path, "mixed", IDS_AND_FLOATS), "model=mixed",
                     "+data.inputs.words.timesteps=12", "data.timesteps=20")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "mixed -> output (4, 2)"
    run = finished_and_agreeing(client)
    assert run.data.tags["shape.input.words"] == "(4, 12)"
    assert run.data.tags["shape.input.signal"] == "(4, 20, 3)"
    assert run.data.params["data.inputs.words.timesteps"] == "12"
