"""What a config may name: the one list of each, read by the schema, the oracle, the reference
and the allowlist alike. Pure Python: importing it costs nothing."""

import difflib
import re

_INITIALIZERS = frozenset({"kernel_initializer", "recurrent_initializer", "bias_initializer"})
# What every layer takes: its name, and (beside what Keras takes) the graph's two words:
# `input` names the layer or model input it reads, `initial_state` a layer whose states start it
_EVERY = frozenset({"name", "input"})
# Arguments every recurrent cell takes, beside its own
_CELL = _INITIALIZERS | {"units", "activation", "use_bias", "dropout", "recurrent_dropout", "seed"}
_RECURRENT = _CELL | _EVERY | {"return_sequences", "return_state", "go_backwards", "unroll",
                                "stateful", "zero_output_for_mask", "initial_state"}

# keras.layers.<name> -> the arguments a config may give it
LAYERS = {
    "SimpleRNN": _RECURRENT,
    "LSTM": _RECURRENT | {"recurrent_activation", "unit_forget_bias", "use_cudnn"},
    "GRU": _RECURRENT | {"recurrent_activation", "reset_after", "use_cudnn"},
    "RNN": _EVERY | {"cell", "return_sequences", "return_state", "go_backwards", "unroll",
                     "stateful", "zero_output_for_mask", "initial_state"},
    "Bidirectional": _EVERY | {"layer", "merge_mode"},
    "Dense": _EVERY | {"units", "activation", "use_bias", "kernel_initializer",
                       "bias_initializer"},
    "TimeDistributed": _EVERY | {"layer"},
    "Embedding": _EVERY | {"input_dim", "output_dim", "mask_zero", "embeddings_initializer"},
    "Masking": _EVERY | {"mask_value"},
    "BatchNormalization": _EVERY | {"axis", "momentum", "epsilon", "center", "scale",
                                    "beta_initializer", "gamma_initializer",
                                    "moving_mean_initializer", "moving_variance_initializer"},
    "Conv1D": _EVERY | {"filters", "kernel_size", "strides", "padding", "dilation_rate",
                        "activation", "use_bias", "kernel_initializer", "bias_initializer"},
    "Lambda": _EVERY | {"function", "arguments"},
    "Dropout": _EVERY | {"rate", "seed"},
}
RECURRENT = ("SimpleRNN", "LSTM", "GRU")

# keras.layers.<name>Cell -> its arguments, for keras.layers.RNN(cell=...)
CELLS = {
    "SimpleRNNCell": _CELL,
    "LSTMCell": _CELL | {"recurrent_activation", "unit_forget_bias"},
    "GRUCell": _CELL | {"recurrent_activation", "reset_after"},
}

# Initializers a config may give as objects with arguments, e.g.
# kernel_initializer: {_target_: keras.initializers.Constant, value: 0.5}
INITIALIZERS = ("Constant", "Zeros", "Ones", "RandomNormal", "RandomUniform", "TruncatedNormal",
                "GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform", "LecunNormal",
                "LecunUniform", "Orthogonal", "Identity", "VarianceScaling")

# The only `_target_`s a config may instantiate (Hydra 1.3 has no allowlist of its own)
ALLOWED_TARGETS = (tuple(f"keras.layers.{name}" for name in (*LAYERS, *CELLS))
                   + tuple(f"keras.initializers.{name}" for name in INITIALIZERS))

# Every activation Keras 3 takes by name (keras.activations), and none other; the NumPy
# reference implements each. `threshold` needs arguments, so it cannot be named alone.
ACTIVATIONS = ("linear", "tanh", "sigmoid", "relu", "hard_sigmoid", "softsign", "celu", "elu",
               "exponential", "gelu", "glu", "hard_shrink", "hard_silu", "hard_swish",
               "hard_tanh", "leaky_relu", "log_sigmoid", "log_softmax", "mish", "relu6", "selu",
               "silu", "soft_shrink", "softmax", "softplus", "sparse_plus", "sparse_sigmoid",
               "sparsemax", "squareplus", "swish", "tanh_shrink")
# Activations that halve the last axis: for Dense and Conv1D, never inside a recurrent cell.
# Keras's symbolic shapes ignore them (compute_output_shape keeps `units`), while the arrays it
# predicts are halved. tests/test_oracle.py checks this list against Keras for every activation
# above, so a new shape-changing activation fails a test instead of a run.
HALVING = ("glu",)

# The runner's Lambda functions (runner/functions.py): name -> the arguments each takes
LAMBDA_FUNCTIONS = {"expand_last_axis": (), "scale": ("factor",)}

# Bidirectional: how the two directions are merged; "none" is Keras's None (two outputs)
MERGE_MODES = ("concat", "sum", "mul", "ave", "none")

# The top-level knobs a model file may take by interpolation (`${return_sequences}`), and their
# defaults: a knob set otherwise on a stack that does not take it is reported, never claimed
KNOBS = {"return_sequences": False, "return_state": False, "merge_mode": "concat"}

# A cell's runs on several backends: the largest difference between any two's predictions
BACKENDS_DIFF = "backends.max_abs_diff"


def did_you_mean(word, choices, prefix: str = "") -> str:
    """` (did you mean units?)` for the choice closest to a mistyped word, or "" if none is."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean {prefix}{close[0]}?)" if close else ""


def closest_targets(target: str, count: int = 3) -> list:
    """The allowed `_target_`s closest to one that is not: by its class name first (Conv2D ->
    keras.layers.Conv1D), then by the whole dotted name."""
    by_name = {allowed.rsplit(".", 1)[1]: allowed for allowed in ALLOWED_TARGETS}
    close = difflib.get_close_matches(target.rsplit(".", 1)[-1], list(by_name), n=count,
                                      cutoff=0.4)
    found = [by_name[name] for name in close]
    found += [t for t in difflib.get_close_matches(target, ALLOWED_TARGETS, n=count, cutoff=0.4)
              if t not in found]
    return (found or list(ALLOWED_TARGETS))[:count]


def spell(value) -> str:
    """A value as YAML and the command line spell it: `true`, `false`, `null`, `3`, `lstm`."""
    if isinstance(value, bool):
        return str(value).lower()
    return "null" if value is None else str(value)


def spell_overrides(overrides: str) -> str:
    """`model=lstm,return_sequences=True` (as Hydra writes a sweep's cell) spelled as a user
    types it: `model=lstm,return_sequences=true`; a server's address without `user:password@`
    (a name is shown and recorded, a password never)."""
    spelled = re.sub(r"=(True|False|None)(?=,|$)",
                     lambda match: "=" + spell({"True": True, "False": False}.get(match.group(1))),
                     overrides)
    return without_login(spelled)


def without_login(text: str) -> str:
    """A server's address (or text holding one) as the runner shows and records it: without
    `user:password@`."""
    return re.sub(r"//[^/@\s]*@", "//", text)
