"""Each Keras layer's rule for the shape oracle: from its config and the shape it reads, its
named outputs, which of them carry a mask, and its parameter count. Pure Python."""

from dataclasses import dataclass
from typing import Optional

from runner.errors import ConfigError, StackError
from runner.vocabulary import (ACTIVATIONS, CELLS, HALVING, LAMBDA_FUNCTIONS, LAYERS, MERGE_MODES,
                               RECURRENT, did_you_mean)

FLOWING = ("output", "forward_output", "backward_output")  # results that feed the next layer
STATES = {"SimpleRNN": ("h",), "LSTM": ("h", "c"), "GRU": ("h",),
          "SimpleRNNCell": ("h",), "LSTMCell": ("h", "c"), "GRUCell": ("h",)}
GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3, "SimpleRNNCell": 1, "LSTMCell": 4, "GRUCell": 3}


@dataclass(frozen=True)
class Context:
    """Where a layer stands in the model."""
    key: str  # `model.layers.3`
    feeding: object = None  # the LayerPlan of the layer it reads, if it reads a layer
    input_name: Optional[str] = None  # the model input it reads, if it reads one
    masked: bool = False  # whether what it reads carries a mask
    initial_state: Optional[list] = None  # [(name, shape)] of the states that start it
    initial_from: Optional[str] = None  # the name of the layer they come from
    symbolic: bool = False  # Keras's symbolic shapes, which ignore glu (HALVING), not the arrays'


def class_name(layer: dict, key: str) -> str:
    """`LSTM` for `_target_: keras.layers.LSTM`: the layer kinds the oracle has rules for."""
    return _kind(layer, key, LAYERS, "a layer")


def _kind(layer: dict, key: str, known: dict, what: str) -> str:
    target = layer.get("_target_") if isinstance(layer, dict) else None
    name = target.rsplit(".", 1)[1] if isinstance(target, str) else None
    if target != f"keras.layers.{name}" or name not in known:
        allowed = ", ".join(f"keras.layers.{kind}" for kind in known)
        raise ConfigError(f"{key}._target_: {target!r} is not {what} the runner knows; "
                          f"known: {allowed}")
    return name


def check_arguments(layer: dict, name: str, key: str, known: dict = LAYERS) -> None:
    for arg in layer:
        if arg != "_target_" and arg not in known[name]:
            allowed = ", ".join(sorted(known[name]))
            raise ConfigError(f"{key}.{arg}: unknown argument for {name}"
                              f"{did_you_mean(arg, known[name])}; known: {allowed}")


def _positive_int(layer: dict, arg: str, key: str, default=None) -> int:
    value = layer.get(arg, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key}.{arg}: must be a positive integer, got {value!r}")
    return value


def _rate(layer: dict, arg: str, key: str) -> None:
    value = layer.get(arg, 0.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(f"{key}.{arg}: must be a rate in [0, 1), got {value!r}")


def _activation(layer: dict, arg: str, key: str, recurrent: bool) -> Optional[str]:
    value = layer.get(arg)
    if value is not None and value not in ACTIVATIONS:
        raise ConfigError(f"{key}.{arg}: {value!r} is not one of {', '.join(ACTIVATIONS)}")
    if recurrent and value in HALVING:
        raise ConfigError(f"{key}.{arg}: {value!r} halves its input, so it cannot be a "
                          "recurrent cell's activation")
    return value


def _flag(layer: dict, arg: str, key: str, default: bool) -> bool:
    value = layer.get(arg, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{key}.{arg}: must be true or false, got {value!r}")
    return value


def _three_d(shape: tuple, name: str, ctx: Context) -> tuple:
    if len(shape) != 3:
        raise StackError(f"{ctx.key}: {name} needs a 3-D input (batch, timesteps, features), "
                         f"gets {tuple(shape)}{_sequences_hint(ctx)}")
    if shape[2] is None:
        raise StackError(f"{ctx.key}: {name} needs a known number of features, gets {shape}")
    return shape


def _sequences_hint(ctx: Context) -> str:
    """Point at the recurrent layer this one reads when it returned its last step only."""
    previous = ctx.feeding
    if previous is None:
        return ""
    kind = previous.label.split("(")[0].split()[0]
    if kind in (*RECURRENT, "RNN", "Bidirectional"):
        inner = "layer." if kind == "Bidirectional" else ""
        add = "" if f"{inner}return_sequences" in previous.given else "+"  # `+` adds a key
        return f"; set {add}model.layers.{previous.index}.{inner}return_sequences=true"
    return ""


def _cell(cell: dict, name: str, features: int, key: str) -> tuple:
    """(units, state names, parameter count) of a recurrent cell reading `features`."""
    units = _positive_int(cell, "units", key)
    for arg in ("dropout", "recurrent_dropout"):
        _rate(cell, arg, key)
    for arg in ("activation", "recurrent_activation"):
        _activation(cell, arg, key, recurrent=True)
    use_bias = _flag(cell, "use_bias", key, True)
    for arg in ("reset_after", "unit_forget_bias"):
        _flag(cell, arg, key, True)
    gates = GATES[name]
    bias_rows = 2 if name.startswith("GRU") and cell.get("reset_after", True) else 1
    params = gates * units * (features + units) + (gates * units * bias_rows if use_bias else 0)
    return units, STATES[name], params


def _sequence_flags(layer: dict, key: str, ctx: Context) -> tuple:
    sequences = _flag(layer, "return_sequences", key, False)
    with_state = _flag(layer, "return_state", key, False)
    for arg in ("go_backwards", "unroll", "stateful", "zero_output_for_mask"):
        _flag(layer, arg, key, False)
    return sequences, with_state


def _check_initial_state(ctx: Context, kind: str, wanted: list) -> None:
    """The states that start a layer: as many as it keeps, each of its size."""
    if ctx.initial_state is None:
        return
    source = ctx.initial_from
    if not ctx.initial_state:
        raise ConfigError(f"{ctx.key}.initial_state: layer {source!r} returns no states; set "
                          "return_state: true on it")
    sizes = [shape[-1] for _, shape in ctx.initial_state]
    if sizes != wanted:
        fix = ("give both the same units" if len(sizes) == len(wanted)
               else f"start it from a layer that keeps {len(wanted)} states, as {kind} does")
        raise ConfigError(f"{ctx.key}.initial_state: layer {source!r} gives states of sizes "
                          f"{sizes}; {kind} here keeps {len(wanted)} of sizes {wanted}: {fix}")


def _recurrent(layer: dict, shape: tuple, ctx: Context, name: Optional[str] = None):
    name = name or class_name(layer, ctx.key)
    batch, timesteps, features = _three_d(shape, name, ctx)
    units, states, params = _cell(layer, name, features, ctx.key)
    sequences, with_state = _sequence_flags(layer, ctx.key, ctx)
    _check_initial_state(ctx, name, [units] * len(states))
    outputs = {"output": (batch, timesteps, units) if sequences else (batch, units)}
    if with_state:
        outputs.update({f"state_{s}": (batch, units) for s in states})
    return outputs, params, name, sequences and ctx.masked


def _rnn(layer: dict, shape: tuple, ctx: Context):
    """keras.layers.RNN around one cell, or a list of cells run one above the other."""
    cells = layer.get("cell")
    stacked = isinstance(cells, list)
    cells = cells if stacked else [cells]
    if not cells or not all(isinstance(c, dict) for c in cells):
        raise ConfigError(f"{ctx.key}.cell: a cell (_target_: keras.layers.LSTMCell, ...) or a "
                          "list of cells")
    batch, timesteps, features = _three_d(shape, "RNN", ctx)
    sequences, with_state = _sequence_flags(layer, ctx.key, ctx)
    params, names, states, sizes = 0, [], [], []
    for i, cell in enumerate(cells):
        cell_key = f"{ctx.key}.cell.{i}" if stacked else f"{ctx.key}.cell"
        name = _kind(cell, cell_key, CELLS, "a recurrent cell")
        check_arguments(cell, name, cell_key, CELLS)
        units, cell_states, cell_params = _cell(cell, name, features, cell_key)
        params, features = params + cell_params, units
        names.append(name)
        prefix = f"state_{i}_" if stacked else "state_"
        states += [(f"{prefix}{s}", units) for s in cell_states]
        sizes += [units] * len(cell_states)
    _check_initial_state(ctx, "RNN", sizes)
    outputs = {"output": (batch, timesteps, features) if sequences else (batch, features)}
    if with_state:
        outputs.update({state: (batch, units) for state, units in states})
    return outputs, params, f"RNN({', '.join(names)})", sequences and ctx.masked


def _bidirectional(layer: dict, shape: tuple, ctx: Context):
    inner_key = f"{ctx.key}.layer"
    inner = layer.get("layer")
    name = class_name(inner, inner_key)
    if name not in RECURRENT:
        raise ConfigError(f"{inner_key}._target_: Bidirectional wraps SimpleRNN, LSTM or GRU, "
                          f"not {name}")
    check_arguments(inner, name, inner_key)
    if _flag(inner, "go_backwards", inner_key, False):
        raise StackError(f"{inner_key}.go_backwards: Bidirectional runs the backward pass "
                         "itself; the wrapped layer must have go_backwards: false")
    for arg in ("stateful", "initial_state"):
        if inner.get(arg) or (arg == "initial_state" and ctx.initial_state is not None):
            raise ConfigError(f"{inner_key}.{arg}: not taken by the runner inside Bidirectional")
    merge_mode = layer.get("merge_mode", "concat")
    merge_mode = "none" if merge_mode is None else merge_mode
    if merge_mode not in MERGE_MODES:
        raise ConfigError(f"{ctx.key}.merge_mode: {merge_mode!r} is not one of "
                          f"{', '.join(MERGE_MODES)}")
    one_way, params, _, masked = _recurrent(inner, shape, Context(
        inner_key, ctx.feeding, ctx.input_name, ctx.masked), name)
    output = one_way["output"]
    if merge_mode == "none":
        outputs = {"forward_output": output, "backward_output": output}
    elif merge_mode == "concat":
        outputs = {"output": (*output[:-1], 2 * output[-1])}
    else:
        outputs = {"output": output}
    for direction in ("forward", "backward"):
        outputs.update({f"{direction}_{s}": one_way[f"state_{s}"]
                        for s in STATES[name] if f"state_{s}" in one_way})
    return outputs, 2 * params, f"Bidirectional({name})", masked


def _dense(layer: dict, shape: tuple, ctx: Context):
    if len(shape) < 2 or shape[-1] is None:
        raise StackError(f"{ctx.key}: Dense needs a known last axis, gets {tuple(shape)}")
    units = _positive_int(layer, "units", ctx.key)
    activation = _activation(layer, "activation", ctx.key, recurrent=False)
    use_bias = _flag(layer, "use_bias", ctx.key, True)
    params = shape[-1] * units + (units if use_bias else 0)
    units = _activated(units, activation, "units", ctx)
    return {"output": (*shape[:-1], units)}, params, "Dense", ctx.masked


def _activated(size: int, activation: Optional[str], arg: str, ctx: Context) -> int:
    """The last axis after the activation: halved by glu in the arrays, though not in Keras's
    symbolic shape."""
    if activation not in HALVING:
        return size
    if size % 2:
        raise ConfigError(f"{ctx.key}.{arg}: {activation} halves the output, so {arg} must "
                          f"be even, got {size}")
    return size if ctx.symbolic else size // 2


def _time_distributed(layer: dict, shape: tuple, ctx: Context):
    inner_key = f"{ctx.key}.layer"
    inner = layer.get("layer")
    if class_name(inner, inner_key) != "Dense":
        raise ConfigError(f"{inner_key}._target_: the runner's TimeDistributed wraps Dense")
    check_arguments(inner, "Dense", inner_key)
    if len(shape) != 3:
        raise StackError(f"{ctx.key}: TimeDistributed needs a 3-D input (batch, timesteps, "
                         f"features), gets {tuple(shape)}{_sequences_hint(ctx)}")
    outputs, params, _, masked = _dense(inner, shape, Context(inner_key, masked=ctx.masked,
                                                              symbolic=ctx.symbolic))
    return outputs, params, "TimeDistributed(Dense)", masked


def _embedding(layer: dict, shape: tuple, ctx: Context):
    if ctx.input_name is None:
        raise ConfigError(f"{ctx.key}: Embedding takes token ids, but reads the floats of "
                          f"{ctx.feeding and f'model.layers.{ctx.feeding.index}'}; give it a "
                          "model input: input: NAME")
    if len(shape) != 2:
        raise ConfigError(f"{ctx.key}: Embedding reads token ids of shape (batch, timesteps); "
                          f"its input {ctx.input_name!r} has shape {tuple(shape)}: declare it "
                          "as [timesteps]")
    input_dim = _positive_int(layer, "input_dim", ctx.key)
    if input_dim < 2:
        raise ConfigError(f"{ctx.key}.input_dim: token 0 is padding, so at least 2, "
                          f"got {input_dim}")
    output_dim = _positive_int(layer, "output_dim", ctx.key)
    masks = _flag(layer, "mask_zero", ctx.key, False)
    return {"output": (*shape, output_dim)}, input_dim * output_dim, "Embedding", masks


def _masking(layer: dict, shape: tuple, ctx: Context):
    value = layer.get("mask_value", 0.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{ctx.key}.mask_value: must be a number, got {value!r}")
    return {"output": tuple(shape)}, 0, "Masking", True


def _batch_normalization(layer: dict, shape: tuple, ctx: Context):
    axis = layer.get("axis", -1)
    if axis not in (-1, len(shape) - 1):
        raise ConfigError(f"{ctx.key}.axis: the runner normalises the last axis (-1), got {axis}")
    epsilon = layer.get("epsilon", 1e-3)
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or epsilon <= 0:
        raise ConfigError(f"{ctx.key}.epsilon: must be a positive number, got {epsilon!r}")
    if shape[-1] is None:
        raise StackError(f"{ctx.key}: BatchNormalization needs a known last axis, "
                         f"gets {tuple(shape)}")
    center = _flag(layer, "center", ctx.key, True)
    scale = _flag(layer, "scale", ctx.key, True)
    params = shape[-1] * (2 + center + scale)  # moving mean and variance, beta, gamma
    return {"output": tuple(shape)}, params, "BatchNormalization", ctx.masked


def _conv1d(layer: dict, shape: tuple, ctx: Context):
    batch, timesteps, features = _three_d(shape, "Conv1D", ctx)
    filters = _positive_int(layer, "filters", ctx.key)
    kernel = layer.get("kernel_size")
    kernel = kernel[0] if isinstance(kernel, list) and len(kernel) == 1 else kernel
    kernel = _positive_int({"kernel_size": kernel}, "kernel_size", ctx.key)
    strides = _positive_int(layer, "strides", ctx.key, 1)
    dilation = _positive_int(layer, "dilation_rate", ctx.key, 1)
    if strides > 1 and dilation > 1:
        raise ConfigError(f"{ctx.key}.strides: Keras takes strides > 1 or dilation_rate > 1, "
                          "not both")
    padding = layer.get("padding", "valid")
    if padding not in ("valid", "same", "causal"):
        raise ConfigError(f"{ctx.key}.padding: {padding!r} is not one of valid, same, causal")
    activation = _activation(layer, "activation", ctx.key, recurrent=False)
    use_bias = _flag(layer, "use_bias", ctx.key, True)
    length = timesteps
    if timesteps is not None:
        span = (kernel - 1) * dilation + 1
        length = -(-timesteps // strides) if padding != "valid" else (timesteps - span) // strides + 1
        if length < 1:
            raise StackError(f"{ctx.key}: Conv1D with kernel_size {kernel} (dilation {dilation}) "
                             f"needs at least {span} timesteps, gets {timesteps}")
    params = kernel * features * filters + (filters if use_bias else 0)
    filters = _activated(filters, activation, "filters", ctx)
    return {"output": (batch, length, filters)}, params, "Conv1D", False  # drops a mask


def _lambda(layer: dict, shape: tuple, ctx: Context):
    function = layer.get("function")
    if function not in LAMBDA_FUNCTIONS:
        known = ", ".join(LAMBDA_FUNCTIONS)
        raise ConfigError(f"{ctx.key}.function: {function!r} is not a runner function; "
                          f"known: {known}")
    arguments = layer.get("arguments") or {}
    if not isinstance(arguments, dict) or sorted(arguments) != sorted(LAMBDA_FUNCTIONS[function]):
        expected = ", ".join(LAMBDA_FUNCTIONS[function]) or "none"
        raise ConfigError(f"{ctx.key}.arguments: {function} takes arguments: {expected}")
    for arg, value in arguments.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{ctx.key}.arguments.{arg}: must be a number, got {value!r}")
    output = (*shape, 1) if function == "expand_last_axis" else tuple(shape)
    return {"output": output}, 0, f"Lambda({function})", False  # a Lambda drops a mask


def _dropout(layer: dict, shape: tuple, ctx: Context):
    _rate(layer, "rate", ctx.key)
    return {"output": tuple(shape)}, 0, "Dropout", ctx.masked


RULES = {
    "SimpleRNN": _recurrent,
    "LSTM": _recurrent,
    "GRU": _recurrent,
    "RNN": _rnn,
    "Bidirectional": _bidirectional,
    "Dense": _dense,
    "TimeDistributed": _time_distributed,
    "Embedding": _embedding,
    "Masking": _masking,
    "BatchNormalization": _batch_normalization,
    "Conv1D": _conv1d,
    "Lambda": _lambda,
    "Dropout": _dropout,
}
