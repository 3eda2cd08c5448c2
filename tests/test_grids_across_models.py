"""A grid across model files: each cell is checked against its own model file, a key every
chosen file sets is overridden without `+`, and a hint the runner gives works when followed."""

import pytest

pytestmark = pytest.mark.slow

EMBEDDINGS = ["model=guide_embedding_lstm,guide_gru_simple_rnn"]


def _explain_grid(run_cli, *overrides):
    return run_cli("-m", "mode=explain", *overrides)


def _rows(result) -> list:
    """The explain tables' layer rows, without their cost columns (mult-adds, bytes)."""
    return [" ".join(line.split()[:-5]) for line in result.stdout.splitlines()
            if line[:1].isdigit()]


def test_a_key_every_file_sets_is_overridden_without_plus(run_cli):
    masked = _explain_grid(run_cli, *EMBEDDINGS, "model.layers.0.mask_zero=true")
    assert (masked.returncode, masked.stderr) == (0, "")
    assert "0 Embedding output (4, 30, 64) masked 64000" in _rows(masked)
    assert "1 GRU output (4, 30, 256) masked 247296" in _rows(masked)
    assert "[model.layers.0.mask_zero=true,model=guide_gru_simple_rnn]" in masked.stdout

    wider = _explain_grid(run_cli, *EMBEDDINGS, "model.layers.0.output_dim=32")
    assert wider.returncode == 0, wider.stderr
    params = [line for line in wider.stdout.splitlines() if line.startswith("total params")]
    assert params == ["total params: 115722", "total params: 305290"]

    units = _explain_grid(run_cli, "model=bilstm,guide_bidirectional",
                          "model.layers.0.layer.units=7")
    assert units.returncode == 0, units.stderr
    assert "0 Bidirectional(LSTM) output (4, 14) 504" in _rows(units)
    assert "0 Bidirectional(LSTM) output (4, 5, 14) 1008" in _rows(units)


def test_plus_on_a_key_the_files_set_gets_a_hint_that_works(run_cli):
    added = _explain_grid(run_cli, *EMBEDDINGS, "+model.layers.0.mask_zero=true")
    assert added.returncode == 1 and added.stdout == ""
    hint = "change it without +: model.layers.0.mask_zero=true"
    assert added.stderr.splitlines() == [
        "2 of 2 cells are invalid; no job was started:",
        "  mode=explain model=guide_embedding_lstm +model.layers.0.mask_zero=true: "
        f"model.layers.0.mask_zero: already set in the model file; {hint}",
        "  mode=explain model=guide_gru_simple_rnn +model.layers.0.mask_zero=true: "
        f"model.layers.0.mask_zero: already set in the model file; {hint}"]
    followed = _explain_grid(run_cli, *EMBEDDINGS, hint.rsplit(": ", 1)[1])
    assert followed.returncode == 0, followed.stderr


def test_a_key_only_some_files_set_names_each_cell_it_does_not_fit(run_cli):
    mixed = _explain_grid(run_cli, "model=bilstm,lstm", "model.layers.0.layer.units=7")
    assert mixed.returncode == 1 and mixed.stdout == ""
    assert mixed.stderr.splitlines() == [
        "1 of 2 cells are invalid; no job was started:",
        "  mode=explain model=lstm model.layers.0.layer.units=7: model.layers.0.layer.units: "
        "model.layers.0 has no 'layer' in this model file"]
    missing = _explain_grid(run_cli, "model=lstm,gru", "model.layers.0.unroll=true")
    assert missing.stderr.splitlines()[1] == (
        "  mode=explain model=lstm model.layers.0.unroll=true: model.layers.0.unroll: not set in "
        "the model file; add it with ++model.layers.0.unroll=true")
    followed = _explain_grid(run_cli, "model=lstm,gru", "++model.layers.0.unroll=true")
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout.count("total params:") == 2
