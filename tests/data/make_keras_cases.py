"""Writes tests/data/keras_rnn_cases.json: Keras's own recurrent-layer unit tests, as data.

    PYTHONPATH=. python tests/data/make_keras_cases.py

Each case is one recurrent layer (SimpleRNN, LSTM, GRU, RNN over cells, Bidirectional), the
arrays fed to it and the arrays it must give back, so that an independent implementation can be
checked against the numbers Keras's tests expect without running Keras.

Two kinds of case
-----------------
* Ported ("expected_from": "the Keras test's literal values"): the inputs, weights and expected
  arrays of a test in keras-team/keras at tag v3.15.1 (the installed version), file and test
  named in "source". The tests build their weights with initializers; here those are written out
  as explicit arrays (`constant_weights`: the LSTM's unit_forget_bias puts 1.0 in the forget-gate
  bias), and each case's arrays are checked equal to the weights Keras builds from the test's own
  initializers. Two transcriptions, both checked by running Keras:
  - rnn_test.py and stacked_rnn_cells_test.py define a test-only cell, OneStateRNNCell (kernel
    and recurrent kernel all ones, output = x @ kernel + h @ recurrent_kernel, no bias, no
    activation). It is written as its built-in equivalent,
    keras.layers.SimpleRNNCell(activation="linear", use_bias=False), with all-ones weights.
  - bidirectional_test.py::test_correctness's "mul" case passes a backward_layer that differs
    from the forward layer only in its initializers; it is written as Bidirectional(layer) with
    the backward layer's weights.
* Generated ("expected_from": "Keras 3.15.1, float32, CPU"): seeded random weights, inputs and
  initial states (rounded to 3 decimals before Keras sees them, so the file holds exactly what
  Keras ran), expected arrays computed here by the installed Keras on the CPU in float32. Keras's
  tests mostly use constant initializers, which make every unit (and every gate's column block)
  identical, so a swap of gates would pass them; these cases would not let it pass. "source"
  names the test a case mirrors, with " (seeded random weights)".
  rnn_stacked_lstm_cells_masking is generated from its test's own weights, not random ones:
  that test's expected values have 4 digits (checked too, at its atol 1e-4); its source has no
  suffix.

Every case, of either kind, is run through the installed Keras from the JSON text about to be
written (layer built from "layer", weights set from "weights", then called on "inputs" with
"mask" and "initial_state") and must give numpy.allclose(keras, expected, atol=1e-5) for each
expected array before anything is written. The file is written the same way on every run: fixed
seeds, keys sorted, floats rounded to 7 significant digits, one case per line.

Case fields
-----------
name, source, expected_from: as above.
layer: the constructor arguments as a Hydra model file writes them (`_target_` plus keyword
  arguments, no initializers). Bidirectional: {"_target_": "keras.layers.Bidirectional",
  "merge_mode": ..., "layer": {...}}. RNN over cells: "cell" is a cell's dict, or a list of them
  for stacked cells.
inputs: (batch, timesteps, features). mask: (batch, timesteps) booleans, or null.
initial_state: a list of state arrays (LSTM: [h, c]; Bidirectional: forward states then backward
  states), or null.
weights: layer.get_weights(), in order (Bidirectional: forward layer's then backward layer's;
  stacked cells: cell by cell).
expected: only the arrays the case checks (a ported case holds what its test asserts), named:
  "output"; "state_h" and, for LSTM, "state_c" (return_state=True).
  Bidirectional: "output" (merged), or with merge_mode null "forward_output" and
  "backward_output" (the backward one in input time order, as Keras returns it); with
  return_state, "forward_h", "forward_c", "backward_h", "backward_c".
  RNN over a list of cells (stacked) with return_state: "state_<i>_h" and, for an LSTMCell,
  "state_<i>_c", i the cell's index counted from 0 (the cell index comes first). RNN over a
  single cell names its states as the matching layer does: "state_h", "state_c".
Stateful cases ("stateful": true in the layer): "inputs" is a list of batches fed in order to one
  layer whose states start at zero, "mask" a list with one entry per batch (or null), and each
  expected value a list with one entry per batch; an entry is null where the ported test checks
  nothing for that batch (Keras's statefulness tests check only the second call).

What Keras does, and so what the expected arrays hold
-----------------------------------------------------
A layer with go_backwards=True and return_sequences=True gives its outputs in the order it
processed them (last input timestep first). At a masked timestep the states are carried
unchanged and the output repeats the previous step's output (zeros before the first unmasked
step, even when an initial_state is given), or is zeros with zero_output_for_mask=True.
Bidirectional with return_sequences=True sets zero_output_for_mask=True on both of its layers
(as its documentation says), so its masked timesteps give zeros.
"""

import json
import os
import sys
from pathlib import Path

os.environ["KERAS_BACKEND"] = "tensorflow"  # the backend the expected arrays come from
os.environ["CUDA_VISIBLE_DEVICES"] = "-1"  # the expected arrays are CPU ones
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import keras  # noqa: E402

OUT = Path(__file__).with_name("keras_rnn_cases.json")
KERAS_VERSION = "3.15.1"  # the tag the ported values come from, and the Keras that checks them
LITERAL = "the Keras test's literal values"
GENERATED = f"Keras {KERAS_VERSION}, float32, CPU"
ATOL = 1e-5

LSTM_T = "keras/src/layers/rnn/lstm_test.py::LSTMTest::"
GRU_T = "keras/src/layers/rnn/gru_test.py::GRUTest::"
SRNN_T = "keras/src/layers/rnn/simple_rnn_test.py::SimpleRNNTest::"
BIDI_T = "keras/src/layers/rnn/bidirectional_test.py::SimpleRNNTest::"  # sic: the class's name
RNN_T = "keras/src/layers/rnn/rnn_test.py::RNNTest::"
STACK_T = "keras/src/layers/rnn/stacked_rnn_cells_test.py::StackedRNNTest::"
RANDOM = " (seeded random weights)"

GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}
RECURRENT = {"SimpleRNN", "LSTM", "GRU", "SimpleRNNCell", "LSTMCell", "GRUCell"}


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------

def arange(shape):
    """np.arange(prod(shape)).reshape(shape), the tests' usual sequence and state."""
    return np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)


def rep(rows, width):
    """[[v] * width for v in rows]: the tests' constant-initializer outputs repeat per unit."""
    return [[v] * width for v in rows]


def constant_weights(kind, input_dim, units, kernel=0.01, recurrent=0.02, bias=0.03,
                     use_bias=True, unit_forget_bias=True, reset_after=True):
    """The weights Constant(kernel), Constant(recurrent), Constant(bias) initializers give a
    layer (or its cell) of `kind`, in get_weights() order."""
    kind = kind.removesuffix("Cell")
    n = GATES[kind] * units
    weights = [np.full((input_dim, n), kernel), np.full((units, n), recurrent)]
    if use_bias:
        if kind == "LSTM" and unit_forget_bias:  # gates i, f, c, o: the forget gate's bias is 1
            b = np.concatenate([np.full(units, bias), np.ones(units), np.full(2 * units, bias)])
        elif kind == "GRU" and reset_after:  # an input bias row and a recurrent bias row
            b = np.full((2, n), bias)
        else:
            b = np.full(n, bias)
        weights.append(b)
    return weights


def layer_cls(cfg):
    module, name = cfg["_target_"].rsplit(".", 1)
    assert module == "keras.layers", cfg["_target_"]
    return name


def instantiate(cfg, init=None):
    """The Keras layer a `layer` dict names; init: initializer keyword arguments given to every
    recurrent layer and cell in it (to rebuild a test's weights from its initializers)."""
    kwargs = {k: v for k, v in cfg.items() if k != "_target_"}
    if "layer" in kwargs:
        kwargs["layer"] = instantiate(kwargs["layer"], init)
    if "cell" in kwargs:
        cell = kwargs["cell"]
        kwargs["cell"] = ([instantiate(c, init) for c in cell] if isinstance(cell, list)
                          else instantiate(cell, init))
    name = layer_cls(cfg)
    if init and name in RECURRENT:
        kwargs.update(init)
    return getattr(keras.layers, name)(**kwargs)


def constant_init(kernel, recurrent, bias=None, **extra):
    """Initializer arguments as a test passes them; bias None keeps the layer's default."""
    init = {"kernel_initializer": keras.initializers.Constant(kernel),
            "recurrent_initializer": keras.initializers.Constant(recurrent), **extra}
    if bias is not None:
        init["bias_initializer"] = keras.initializers.Constant(bias)
    return init


def built_weights(layer, input_shape):
    layer.build(tuple(input_shape))
    return layer.get_weights()


def output_names(cfg):
    """Names of the arrays a call returns, in the order Keras returns them (flattened)."""
    name = layer_cls(cfg)
    if name == "Bidirectional":
        inner = cfg["layer"]
        merged = cfg.get("merge_mode", "concat") is not None
        names = ["output"] if merged else ["forward_output", "backward_output"]
        if inner.get("return_state", False):
            for side in ("forward", "backward"):
                names += [f"{side}_{s}" for s in state_letters(layer_cls(inner))]
        return names
    names = ["output"]
    if cfg.get("return_state", False):
        cell = cfg.get("cell")
        if isinstance(cell, list):
            for i, c in enumerate(cell):
                names += [f"state_{i}_{s}" for s in state_letters(layer_cls(c))]
        else:
            names += [f"state_{s}" for s in state_letters(layer_cls(cell) if cell else name)]
    return names


def state_letters(kind):
    return ["h", "c"] if kind.removesuffix("Cell") == "LSTM" else ["h"]


def run_keras(case):
    """What the installed Keras gives for a case: {name: array}, or {name: [array per batch]}."""
    cfg = case["layer"]
    stateful = is_stateful(cfg)
    batches = case["inputs"] if stateful else [case["inputs"]]
    masks = case["mask"] if stateful else [case["mask"]]
    if masks is None:
        masks = [None] * len(batches)
    layer = instantiate(cfg)
    layer.build(np.shape(batches[0]))
    layer.set_weights([np.asarray(w, np.float32) for w in case["weights"]])
    if stateful:
        layer.reset_state()
    names = output_names(cfg)
    results = []
    for x, mask in zip(batches, masks):
        kwargs = {}
        if mask is not None:
            kwargs["mask"] = np.asarray(mask, bool)
        if case["initial_state"] is not None:
            kwargs["initial_state"] = [np.asarray(s, np.float32) for s in case["initial_state"]]
        out = layer(np.asarray(x, np.float32), **kwargs)
        flat = [np.asarray(a, np.float64) for a in keras.tree.flatten(out)]
        assert len(flat) == len(names), (case["name"], len(flat), names)
        results.append(dict(zip(names, flat)))
    if stateful:
        return {k: [r[k] for r in results] for k in names}
    return results[0]


def is_stateful(cfg):
    return bool(cfg.get("stateful", False) or cfg.get("layer", {}).get("stateful", False))


def round7(value):
    """JSON-ready: arrays to nested lists, floats to 7 significant digits."""
    if isinstance(value, np.ndarray):
        return round7(value.tolist())
    if isinstance(value, (list, tuple)):
        return [round7(v) for v in value]
    if isinstance(value, dict):
        return {k: round7(v) for k, v in value.items()}
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)):  # units and other integer arguments
        return int(value)
    return float(f"{float(value):.7g}")


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------

CASES = []
INIT_CHECKS = {}  # name -> callable giving the weights Keras builds from the test's initializers
EXTRA_CHECKS = {}  # name -> callable(keras_result): further asserts for a case


def case(name, source, layer, inputs, weights, expected=None, mask=None, initial_state=None,
         init_check=None, seed=None):
    """Adds a case; expected None: a generated case (Keras computes it)."""
    assert all(c["name"] != name for c in CASES), name
    entry = {"name": name, "source": source, "layer": layer, "inputs": inputs, "mask": mask,
             "initial_state": initial_state, "weights": weights, "expected": expected,
             "expected_from": LITERAL if expected is not None else GENERATED}
    CASES.append(entry)
    if init_check is not None:
        INIT_CHECKS[name] = init_check
    return entry


def lit(name, source, layer, inputs, expected, *, mask=None, initial_state=None,
        weight_args=None, init=None):
    """A ported case with constant-initializer weights: weight_args for constant_weights, init
    for the Keras layer built with the test's own initializers (defaults: 0.01, 0.02, 0.03)."""
    inner = layer.get("layer", layer)
    kind = layer_cls(inner)
    x0 = inputs[0] if is_stateful(layer) else inputs
    input_dim = np.shape(x0)[-1]
    wa = {"kernel": 0.01, "recurrent": 0.02, "bias": 0.03,
          "use_bias": inner.get("use_bias", True),
          "reset_after": inner.get("reset_after", True), **(weight_args or {})}
    one = constant_weights(kind, input_dim, inner["units"], **wa)
    weights = one + one if layer_cls(layer) == "Bidirectional" else one
    init = init or constant_init(0.01, 0.02, 0.03)
    case(name, source, layer, inputs, weights, expected, mask=mask, initial_state=initial_state,
         init_check=lambda: built_weights(instantiate(layer, init), np.shape(x0)))


def LSTM(units, **kw):
    return {"_target_": "keras.layers.LSTM", "units": units, **kw}


def GRU(units, **kw):
    return {"_target_": "keras.layers.GRU", "units": units, **kw}


def SimpleRNN(units, **kw):
    return {"_target_": "keras.layers.SimpleRNN", "units": units, **kw}


def Bidirectional(layer, merge_mode="concat"):
    return {"_target_": "keras.layers.Bidirectional", "merge_mode": merge_mode, "layer": layer}


def RNN(cell, **kw):
    return {"_target_": "keras.layers.RNN", "cell": cell, **kw}


def Cell(kind, units, **kw):
    return {"_target_": f"keras.layers.{kind}Cell", "units": units, **kw}


def LinearCell(units):
    """rnn_test.py's OneStateRNNCell as the built-in cell it equals (with all-ones weights)."""
    return Cell("SimpleRNN", units, activation="linear", use_bias=False)


# --- lstm_test.py ------------------------------------------------------------------------------
SEQ_3x6x4 = arange((3, 6, 4))
SEQ_2x3x4 = arange((2, 3, 4))
SEQ_2x4x3 = arange((2, 4, 3))

lit("lstm_correctness", LSTM_T + "test_correctness", LSTM(3), SEQ_3x6x4,
    {"output": rep([0.6288687, 0.86899155, 0.9460773], 3)})
lit("lstm_correctness_go_backwards", LSTM_T + "test_correctness", LSTM(3, go_backwards=True),
    SEQ_3x6x4, {"output": rep([0.35622165, 0.74789524, 0.8872726], 3)})
lit("lstm_correctness_no_unit_forget_bias", LSTM_T + "test_correctness", LSTM(3), SEQ_3x6x4,
    {"output": rep([0.57019705, 0.8661914, 0.9459622], 3)},
    weight_args={"unit_forget_bias": False},
    init=constant_init(0.01, 0.02, 0.03, unit_forget_bias=False))
lit("lstm_statefulness", LSTM_T + "test_statefulness", LSTM(4, stateful=True),
    [SEQ_2x3x4, SEQ_2x3x4],
    {"output": [None, rep([0.3124785, 0.6863672], 4)]})
lit("lstm_pass_initial_state_go_backwards", LSTM_T + "test_pass_initial_state",
    LSTM(2, go_backwards=True), SEQ_2x4x3,
    {"output": [[0.13281618, 0.2790356], [0.5839337, 0.5992567]]},
    initial_state=[arange((2, 2)), arange((2, 2))])
LSTM_MASK = [[True, True, True, False], [True, True, False, False]]
lit("lstm_masking_return_sequences", LSTM_T + "test_masking", LSTM(2, return_sequences=True),
    SEQ_2x4x3,
    {"output": [rep([0.01588910, 0.05552048, 0.11755939, 0.11755939], 2),
                rep([0.14185596, 0.28556206, 0.28556206, 0.28556206], 2)]},
    mask=LSTM_MASK)
lit("lstm_masking_go_backwards", LSTM_T + "test_masking", LSTM(2, go_backwards=True), SEQ_2x4x3,
    {"output": rep([0.15341201, 0.3844719], 2)},
    mask=[[False, True, True, True], [False, False, True, True]])

# --- gru_test.py -------------------------------------------------------------------------------
lit("gru_correctness", GRU_T + "test_correctness", GRU(3), SEQ_3x6x4,
    {"output": [[0.5217289] * 3, [0.6371659] * 3, [0.39384964, 0.39384964, 0.3938496]]})
lit("gru_correctness_reset_after_false", GRU_T + "test_correctness", GRU(3, reset_after=False),
    SEQ_3x6x4, {"output": rep([0.51447755, 0.6426879, 0.40208298], 3)})
lit("gru_statefulness", GRU_T + "test_statefulness", GRU(4, stateful=True),
    [SEQ_2x3x4, SEQ_2x3x4],
    {"output": [None, rep([0.29542392, 0.5885018], 4)]})
lit("gru_pass_return_state", GRU_T + "test_pass_return_state", GRU(2, return_state=True),
    SEQ_2x4x3,
    {"output": [[0.23774096, 0.33508456], [0.83659905, 1.0227708]],
     "state_h": [[0.23774096, 0.33508456], [0.83659905, 1.0227708]]},  # the test: state == output
    initial_state=[arange((2, 2))])
GRU_MASK = [[True, True, False, True], [True, False, False, True]]
lit("gru_masking_return_sequences", GRU_T + "test_masking", GRU(2, return_sequences=True),
    SEQ_2x4x3,
    {"output": [rep([0.03606692, 0.09497581, 0.09497581, 0.19393763], 2),
                rep([0.16051409, 0.16051409, 0.16051409, 0.30818558], 2)]},
    mask=GRU_MASK)
lit("gru_masking_zero_output_for_mask", GRU_T + "test_masking",
    GRU(2, return_sequences=True, zero_output_for_mask=True), SEQ_2x4x3,
    {"output": [rep([0.03606692, 0.09497581, 0.0, 0.19393763], 2),
                rep([0.16051409, 0.0, 0.0, 0.30818558], 2)]},
    mask=GRU_MASK)
lit("gru_masking_go_backwards", GRU_T + "test_masking", GRU(2, go_backwards=True), SEQ_2x4x3,
    {"output": rep([0.11669192, 0.28380975], 2)}, mask=GRU_MASK)

# --- simple_rnn_test.py ------------------------------------------------------------------------
lit("simple_rnn_correctness_go_backwards", SRNN_T + "test_correctness",
    SimpleRNN(4, go_backwards=True), SEQ_2x3x4,
    {"output": rep([0.11144729, 0.5528889], 4)})
lit("simple_rnn_pass_initial_state", SRNN_T + "test_pass_initial_state", SimpleRNN(4),
    SEQ_2x4x3, {"output": rep([0.33621645, 0.6262637], 4)}, initial_state=[arange((2, 4))])
lit("simple_rnn_masking", SRNN_T + "test_masking", SimpleRNN(4, unroll=True), SEQ_2x4x3,
    {"output": rep([0.32951632, 0.61799484], 4)}, mask=GRU_MASK)
lit("simple_rnn_masking_return_sequences", SRNN_T + "test_masking",
    SimpleRNN(2, return_sequences=True), SEQ_2x4x3,
    {"output": [rep([0.0599281, 0.15122814, 0.15122814, 0.32394567], 2),
                rep([0.3969304, 0.3969304, 0.3969304, 0.608085], 2)]},
    mask=GRU_MASK)

# --- bidirectional_test.py ---------------------------------------------------------------------
lit("bidirectional_simple_rnn_ave", BIDI_T + "test_correctness",
    Bidirectional(SimpleRNN(2), "ave"), SEQ_2x3x4,
    {"output": rep([0.24845785, 0.6288199], 2)})
lit("bidirectional_simple_rnn_merge_none", BIDI_T + "test_correctness",
    Bidirectional(SimpleRNN(2), None), SEQ_2x3x4,
    {"forward_output": rep([0.39687276, 0.7237238], 2),
     "backward_output": rep([0.10004295, 0.53391594], 2)})


def _bidi_mul_init_check():
    """The test's own construction: a backward_layer with other initializers."""
    fwd = keras.layers.SimpleRNN(2, **constant_init(0.01, 0.02, 0.03))
    bwd = keras.layers.SimpleRNN(2, go_backwards=True, **constant_init(0.03, 0.02, 0.01))
    return built_weights(keras.layers.Bidirectional(fwd, backward_layer=bwd, merge_mode="mul"),
                         SEQ_2x3x4.shape)


case("bidirectional_simple_rnn_mul", BIDI_T + "test_correctness",
     Bidirectional(SimpleRNN(2), "mul"), SEQ_2x3x4,
     constant_weights("SimpleRNN", 4, 2, 0.01, 0.02, 0.03)
     + constant_weights("SimpleRNN", 4, 2, 0.03, 0.02, 0.01),
     {"output": rep([0.08374989, 0.6740834], 2)}, init_check=_bidi_mul_init_check)
lit("bidirectional_gru_sum_return_sequences", BIDI_T + "test_correctness",
    Bidirectional(GRU(2, return_sequences=True), "sum"), SEQ_2x3x4,
    {"output": [rep([0.20937867, 0.34462988, 0.40290534], 2),
                rep([0.59829646, 0.6734641, 0.6479671], 2)]})
lit("bidirectional_lstm_pass_initial_state", BIDI_T + "test_pass_initial_state",
    Bidirectional(LSTM(2)), SEQ_2x4x3,
    {"output": [[0.20794602, 0.4577124, 0.14046375, 0.48191673],
                [0.6682636, 0.6711909, 0.60943645, 0.60950446]]},
    initial_state=[arange((2, 2)) * k for k in (1, 2, 3, 4)])
lit("bidirectional_gru_masking", BIDI_T + "test_masking", Bidirectional(GRU(2)), SEQ_2x4x3,
    {"output": [[0.19393763, 0.19393763, 0.11669192, 0.11669192],
                [0.30818558, 0.30818558, 0.28380975, 0.28380975]]},
    mask=GRU_MASK)
lit("bidirectional_lstm_return_state", BIDI_T + "test_return_state",
    Bidirectional(LSTM(2, return_state=True)), SEQ_2x4x3,
    {"output": [[0.1990008, 0.1990008, 0.12659755, 0.12659755],
                [0.52335435, 0.52335435, 0.44717982, 0.44717982]],
     "forward_h": rep([0.1990008, 0.52335435], 2),
     "forward_c": rep([0.35567185, 1.0492687], 2),
     "backward_h": rep([0.12659755, 0.44717982], 2),
     "backward_c": rep([0.2501858, 0.941473], 2)})

# --- rnn_test.py and stacked_rnn_cells_test.py (OneStateRNNCell as a linear SimpleRNNCell) -----
ONES = constant_init(1.0, 1.0)
case("rnn_linear_cell_masking_return_sequences", RNN_T + "test_masking",
     RNN(LinearCell(2), return_sequences=True), SEQ_2x4x3,
     constant_weights("SimpleRNN", 3, 2, 1.0, 1.0, use_bias=False),
     {"output": [rep([3.0, 18.0, 57.0, 57.0], 2), rep([39.0, 126.0, 126.0, 126.0], 2)]},
     mask=LSTM_MASK,
     init_check=lambda: built_weights(instantiate(RNN(LinearCell(2)), ONES), (2, 4, 3)))
STACK = RNN([LinearCell(3), LinearCell(2)], return_sequences=True, return_state=True)
case("rnn_stacked_linear_cells_return_sequences_return_state",
     STACK_T + "test_correctness_single_state_stack", STACK, SEQ_2x3x4,
     constant_weights("SimpleRNN", 4, 3, 1.0, 1.0, use_bias=False)
     + constant_weights("SimpleRNN", 3, 2, 1.0, 1.0, use_bias=False),
     {"output": [rep([18.0, 156.0, 786.0], 2), rep([162.0, 1020.0, 4386.0], 2)],
      "state_0_h": rep([158.0, 782.0], 3),
      "state_1_h": rep([786.0, 4386.0], 2)},
     init_check=lambda: built_weights(instantiate(STACK, ONES), SEQ_2x3x4.shape))


# --- generated: seeded random weights ----------------------------------------------------------

def rand(rng, shape, scale=1.0):
    return np.round(rng.uniform(-scale, scale, shape), 3)


def gen(name, source, layer, seed, shape, *, mask=None, initial_state=False, batches=1,
        inputs=None, weights=None, suffix=RANDOM):
    """A generated case: random inputs (shape, or `batches` of them for a stateful layer),
    random weights and, with initial_state, random initial states; inputs and weights, when
    given, are used instead of random ones."""
    rng = np.random.default_rng(seed)
    xs = [rand(rng, shape) for _ in range(batches)] if inputs is None else [inputs]
    probe = instantiate(layer)
    shapes = [w.shape for w in built_weights(probe, shape)]
    if weights is None:
        weights = [rand(rng, s, 0.8) for s in shapes]
    state = None
    if initial_state:
        state = [rand(rng, (shape[0], int(s)), 0.5) for s in state_sizes(layer)]
    case(name, source + suffix, layer, xs if is_stateful(layer) else xs[0], weights, None,
         mask=mask, initial_state=state)


def state_sizes(cfg):
    name = layer_cls(cfg)
    if name == "Bidirectional":
        return state_sizes(cfg["layer"]) * 2
    units = cfg["cell"]["units"] if name == "RNN" else cfg["units"]
    kind = layer_cls(cfg["cell"]) if name == "RNN" else name
    return [units] * len(state_letters(kind))


MASK_3x5 = [[True, True, True, True, True],
            [True, True, True, False, False],
            [False, True, True, False, True]]
MASK_3x4 = [[True, True, True, True], [True, True, False, False], [False, True, False, True]]

gen("lstm_random_weights_return_sequences_return_state", LSTM_T + "test_correctness",
    LSTM(3, return_sequences=True, return_state=True), 101, (3, 5, 4))
gen("gru_random_weights_return_sequences_return_state", GRU_T + "test_pass_return_state",
    GRU(3, return_sequences=True, return_state=True), 102, (3, 5, 4))
gen("gru_reset_after_false_random_weights_go_backwards_return_state",
    GRU_T + "test_correctness",
    GRU(3, reset_after=False, go_backwards=True, return_sequences=True, return_state=True),
    103, (3, 5, 4))
gen("simple_rnn_random_weights_masking_return_sequences_return_state",
    SRNN_T + "test_masking", SimpleRNN(3, return_sequences=True, return_state=True), 104,
    (3, 5, 4), mask=MASK_3x5)
gen("lstm_random_weights_masking_initial_state_go_backwards", LSTM_T + "test_masking",
    LSTM(3, go_backwards=True, return_sequences=True, return_state=True), 105, (3, 5, 4),
    mask=MASK_3x5, initial_state=True)
gen("gru_random_weights_masking_initial_state_return_state", GRU_T + "test_masking",
    GRU(3, return_sequences=True, return_state=True), 106, (3, 5, 4), mask=MASK_3x5,
    initial_state=True)
gen("lstm_random_weights_stateful_three_batches_masking", LSTM_T + "test_statefulness",
    LSTM(3, stateful=True, return_sequences=True, return_state=True), 107, (3, 4, 4),
    batches=3, mask=[[[True] * 4] * 3, MASK_3x4, MASK_3x4[::-1]])
gen("rnn_simple_rnn_cell_random_weights_go_backwards_return_state",
    RNN_T + "test_go_backwards",
    RNN(Cell("SimpleRNN", 3), go_backwards=True, return_sequences=True, return_state=True),
    108, (2, 5, 4))
gen("rnn_lstm_cell_random_weights_masking_return_state", RNN_T + "test_masking",
    RNN(Cell("LSTM", 3), return_sequences=True, return_state=True), 109, (3, 5, 4),
    mask=MASK_3x5)
gen("rnn_gru_cell_random_weights_initial_state_return_state",
    RNN_T + "test_passing_initial_state_single_state",
    RNN(Cell("GRU", 3), return_sequences=True, return_state=True), 110, (3, 5, 4),
    initial_state=True)
gen("rnn_stacked_cells_random_weights_masking_return_state",
    STACK_T + "test_stacked_lstm_cell_mask",
    RNN([Cell("LSTM", 3), Cell("GRU", 2), Cell("SimpleRNN", 4)], return_sequences=True,
        return_state=True),
    111, (3, 5, 4), mask=MASK_3x5)
gen("bidirectional_lstm_random_weights_concat_masking_return_state",
    BIDI_T + "test_return_state",
    Bidirectional(LSTM(3, return_sequences=True, return_state=True)), 112, (3, 5, 4),
    mask=MASK_3x5)
gen("bidirectional_gru_random_weights_merge_none_initial_state_return_state",
    BIDI_T + "test_pass_initial_state",
    Bidirectional(GRU(3, return_sequences=True, return_state=True), None), 113, (3, 5, 4),
    mask=MASK_3x5, initial_state=True)

# stacked_rnn_cells_test.py::test_stacked_lstm_cell_mask with its own weights: the test's values
# have 4 digits (atol 1e-4), so the expected arrays are Keras's, checked against them below
STACKED_LSTM = RNN([Cell("LSTM", 1), Cell("LSTM", 1)])
gen("rnn_stacked_lstm_cells_masking", STACK_T + "test_stacked_lstm_cell_mask", STACKED_LSTM, 0,
    (2, 3, 4), mask=[[True, True, True], [True, True, False]], suffix="",
    inputs=np.ones((2, 3, 4)),
    weights=constant_weights("LSTM", 4, 1, 1.0, 1.0, 0.0)
    + constant_weights("LSTM", 1, 1, 1.0, 1.0, 0.0))
INIT_CHECKS["rnn_stacked_lstm_cells_masking"] = lambda: built_weights(
    instantiate(STACKED_LSTM, {"kernel_initializer": "ones", "recurrent_initializer": "ones"}),
    (2, 3, 4))
EXTRA_CHECKS["rnn_stacked_lstm_cells_masking"] = lambda got: np.testing.assert_allclose(
    got["output"], [[0.7793], [0.5998]], atol=1e-4, rtol=0)


# ---------------------------------------------------------------------------------------------
# Check and write
# ---------------------------------------------------------------------------------------------

def close(name, key, got, want):
    """allclose(atol=1e-5) of Keras's array against the expected one; None entries (batches a
    ported stateful test does not check) are skipped. Returns the largest difference."""
    if want is None:
        return 0.0
    if isinstance(want, list) and isinstance(got, list):  # stateful: one entry per batch
        assert len(got) == len(want), (name, key)
        return max(close(name, key, g, w) for g, w in zip(got, want))
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape, (name, key, got.shape, want.shape)
    diff = float(np.max(np.abs(got - want)))
    if not np.allclose(got, want, atol=ATOL):
        raise SystemExit(f"{name}: Keras's {key} differs from the expected one by {diff:.3g}\n"
                         f"keras: {got.tolist()}\nexpected: {want.tolist()}")
    return diff


def main():
    if keras.__version__ != KERAS_VERSION:
        raise SystemExit(f"needs Keras {KERAS_VERSION} (the ported tests' version), "
                         f"found {keras.__version__}")
    lines = []
    for entry in CASES:
        name = entry["name"]
        if name in INIT_CHECKS:  # the explicit weights are those the test's initializers give
            built = INIT_CHECKS[name]()
            assert len(built) == len(entry["weights"]), name
            for b, w in zip(built, entry["weights"]):
                assert np.array_equal(b, np.asarray(w, np.float32)), (name, b, w)
        if entry["expected"] is None:
            entry["expected"] = run_keras(round7(entry))
        text = json.dumps(round7(entry), sort_keys=True, separators=(",", ":"), allow_nan=False)
        written = json.loads(text)
        got = run_keras(written)  # the check runs on exactly what is written
        assert set(written["expected"]) <= set(got), (name, sorted(written["expected"]))
        worst = max(close(name, k, got[k], want) for k, want in written["expected"].items())
        if name in EXTRA_CHECKS:
            EXTRA_CHECKS[name](got)
        print(f"ok  {name:<70} {written['expected_from']:<32} max|diff| {worst:.2e}")
        lines.append(text)
    OUT.write_text("[\n" + ",\n".join(lines) + "\n]\n")
    print(f"{len(lines)} cases, {OUT.stat().st_size} bytes: {OUT.name}")


if __name__ == "__main__":
    sys.exit(main())
