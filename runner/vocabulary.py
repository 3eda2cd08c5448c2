"""What a config may name: the one list of each, read by the schema, the oracle, the reference
and the allowlist alike. Pure Python: importing it costs nothing."""

import re

# Arguments every recurrent layer takes, beside its own
_RECURRENT = frozenset({
    "units", "activation", "use_bias", "kernel_initializer", "recurrent_initializer",
    "bias_initializer", "dropout", "recurrent_dropout", "return_sequences", "return_state",
    "go_backwards", "unroll", "seed", "name",
})

# keras.layers.<name> -> the arguments a config may give it
LAYERS = {
    "SimpleRNN": _RECURRENT,
    "LSTM": _RECURRENT | {"recurrent_activation", "unit_forget_bias", "use_cudnn"},
    "GRU": _RECURRENT | {"recurrent_activation", "reset_after", "use_cudnn"},
    "Bidirectional": frozenset({"layer", "merge_mode", "name"}),
    "Dense": frozenset({"units", "activation", "use_bias", "kernel_initializer",
                        "bias_initializer", "name"}),
    "Lambda": frozenset({"function", "arguments", "name"}),
    "Dropout": frozenset({"rate", "seed", "name"}),
}
RECURRENT = ("SimpleRNN", "LSTM", "GRU")

# The only `_target_`s a config may instantiate (Hydra 1.3 has no allowlist of its own)
ALLOWED_TARGETS = tuple(f"keras.layers.{name}" for name in LAYERS)

# Activations by name, as Keras spells them; the NumPy reference implements each
ACTIVATIONS = ("linear", "tanh", "sigmoid", "relu", "hard_sigmoid", "softsign")

# The runner's Lambda functions (runner/functions.py): name -> the arguments each takes
LAMBDA_FUNCTIONS = {"expand_last_axis": (), "scale": ("factor",)}

# Bidirectional: how the two directions are merged; "none" is Keras's None (two outputs)
MERGE_MODES = ("concat", "sum", "mul", "ave", "none")

# The top-level knobs a model file may take by interpolation (`${return_sequences}`), and their
# defaults: a knob set otherwise on a stack that does not take it is reported, never claimed
KNOBS = {"return_sequences": False, "return_state": False, "merge_mode": "concat"}


def spell(value) -> str:
    """A value as YAML and the command line spell it: `true`, `false`, `null`, `3`, `lstm`."""
    if isinstance(value, bool):
        return str(value).lower()
    return "null" if value is None else str(value)


def spell_overrides(overrides: str) -> str:
    """`model=lstm,return_sequences=True` (as Hydra writes a sweep's cell) spelled as a user
    types it: `model=lstm,return_sequences=true`."""
    return re.sub(r"=(True|False|None)(?=,|$)",
                  lambda match: "=" + spell({"True": True, "False": False}.get(match.group(1))),
                  overrides)
