"""The shape oracle: every layer's output shapes and parameter counts, from the config alone.

Pure Python on purpose: `mode=explain` and validation use it without importing TensorFlow, and
every real run compares Keras's shapes and `count_params()` with what is computed here.
"""

from dataclasses import dataclass, field
from typing import Optional

from runner.errors import ConfigError, StackError
from runner.vocabulary import ACTIVATIONS, LAMBDA_FUNCTIONS, LAYERS, MERGE_MODES, RECURRENT

Shape = tuple  # of Optional[int]; None where the size is not known (batch, or any timesteps)

RECURRENT_STATES = {"SimpleRNN": ("h",), "LSTM": ("h", "c"), "GRU": ("h",)}
GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}
FLOWING = ("output", "forward_output", "backward_output")  # results that feed the next layer


@dataclass(frozen=True)
class LayerPlan:
    index: int
    label: str  # e.g. "Bidirectional(LSTM)"
    outputs: dict  # result name -> shape, in the order Keras returns them
    param_count: int
    given: frozenset = frozenset()  # the arguments its config gives (the wrapped layer's too)


@dataclass(frozen=True)
class StackPlan:
    input_shape: Shape
    layers: list = field(default_factory=list)
    outputs: dict = field(default_factory=dict)  # the model's named outputs -> shape

    @property
    def param_count(self) -> int:
        return sum(layer.param_count for layer in self.layers)


def format_shape(shape) -> str:
    """A shape as the notebook prints it: `(4, 30, 6)`."""
    return str(tuple(shape))


def class_name(layer: dict, key: str) -> str:
    """`LSTM` for `_target_: keras.layers.LSTM`: the layer kinds the oracle has rules for."""
    target = layer.get("_target_") if isinstance(layer, dict) else None
    name = target.rsplit(".", 1)[1] if isinstance(target, str) else None
    if target != f"keras.layers.{name}" or name not in LAYERS:
        known = ", ".join(f"keras.layers.{kind}" for kind in LAYERS)
        raise ConfigError(f"{key}._target_: {target!r} is not a layer the runner knows; "
                          f"known: {known}")
    return name


def plan_stack(layers: list, input_shape: Shape) -> StackPlan:
    """Every layer's outputs and parameter count for inputs of `input_shape` (batch first)."""
    if not layers:
        raise ConfigError("model.layers: a stack needs at least one layer")
    last_recurrent = max(
        (i for i, layer in enumerate(layers) if class_name(layer, f"model.layers.{i}")
         in (*RECURRENT, "Bidirectional")),
        default=-1,
    )
    flowing: dict = {"output": tuple(input_shape)}
    states: dict = {}
    plans = []
    for index, layer in enumerate(layers):
        key = f"model.layers.{index}"
        if "output" not in flowing:
            raise StackError(
                f"{key}: merge_mode=none makes model.layers.{index - 1} return two sequences, "
                "which no further layer can take; use merge_mode concat|sum|mul|ave"
            )
        name = class_name(layer, key)
        _check_arguments(layer, name, key)
        outputs, params, label = _RULES[name](layer, flowing["output"], key, plans)
        layer_states = {k: v for k, v in outputs.items() if k not in FLOWING}
        if layer_states and index != last_recurrent:
            raise StackError(
                f"{_state_key(layer, key)}: only the last recurrent layer may return its states; "
                "an inner layer's states cannot flow on"
            )
        states.update(layer_states)
        flowing = {k: v for k, v in outputs.items() if k in FLOWING}
        given = frozenset(layer) | frozenset(f"layer.{arg}" for arg in layer.get("layer") or {})
        plans.append(LayerPlan(index, label, dict(outputs), params, given))
    return StackPlan(tuple(input_shape), plans, {**flowing, **states})


def _state_key(layer: dict, key: str) -> str:
    return f"{key}.layer.return_state" if "layer" in layer else f"{key}.return_state"


def _check_arguments(layer: dict, name: str, key: str) -> None:
    for arg in layer:
        if arg != "_target_" and arg not in LAYERS[name]:
            known = ", ".join(sorted(LAYERS[name]))
            raise ConfigError(f"{key}.{arg}: unknown argument for {name}; known: {known}")


def _positive_int(layer: dict, arg: str, key: str) -> int:
    value = layer.get(arg)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key}.{arg}: must be a positive integer, got {value!r}")
    return value


def _rate(layer: dict, arg: str, key: str) -> None:
    value = layer.get(arg, 0.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(f"{key}.{arg}: must be a rate in [0, 1), got {value!r}")


def _activation(layer: dict, arg: str, key: str) -> None:
    value = layer.get(arg)
    if value is not None and value not in ACTIVATIONS:
        raise ConfigError(f"{key}.{arg}: {value!r} is not one of {', '.join(ACTIVATIONS)}")


def _flag(layer: dict, arg: str, key: str, default: bool) -> bool:
    value = layer.get(arg, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{key}.{arg}: must be true or false, got {value!r}")
    return value


def _recurrent(layer: dict, shape: Shape, key: str, plans: list, name: Optional[str] = None):
    name = name or class_name(layer, key)
    if len(shape) != 3:
        raise StackError(
            f"{key}: {name} needs a 3-D input (batch, timesteps, features), "
            f"gets {format_shape(shape)}{_sequences_hint(plans)}"
        )
    batch, timesteps, features = shape
    if features is None:
        raise StackError(f"{key}: {name} needs a known number of features, gets {shape}")
    units = _positive_int(layer, "units", key)
    for arg in ("dropout", "recurrent_dropout"):
        _rate(layer, arg, key)
    for arg in ("activation", "recurrent_activation"):
        _activation(layer, arg, key)
    sequences = _flag(layer, "return_sequences", key, False)
    with_state = _flag(layer, "return_state", key, False)
    use_bias = _flag(layer, "use_bias", key, True)
    for arg in ("go_backwards", "unroll", "reset_after", "unit_forget_bias"):
        _flag(layer, arg, key, True)
    output = (batch, timesteps, units) if sequences else (batch, units)
    outputs = {"output": output}
    if with_state:
        outputs.update({f"state_{s}": (batch, units) for s in RECURRENT_STATES[name]})
    gates = GATES[name]
    bias_rows = 2 if name == "GRU" and layer.get("reset_after", True) else 1
    params = gates * units * (features + units) + (gates * units * bias_rows if use_bias else 0)
    return outputs, params, name


def _sequences_hint(plans: list) -> str:
    """Point at the recurrent layer before this one when it returned its last step only."""
    if not plans:
        return ""
    previous = plans[-1]
    kind = previous.label.split("(")[0]
    if kind in RECURRENT or kind == "Bidirectional":
        inner = "layer." if kind == "Bidirectional" else ""
        add = "" if f"{inner}return_sequences" in previous.given else "+"  # `+` adds a key
        return f"; set {add}model.layers.{previous.index}.{inner}return_sequences=true"
    return ""


def _bidirectional(layer: dict, shape: Shape, key: str, plans: list):
    inner_key = f"{key}.layer"
    inner = layer.get("layer")
    name = class_name(inner, inner_key)
    if name not in RECURRENT:
        raise ConfigError(f"{inner_key}._target_: Bidirectional wraps SimpleRNN, LSTM or GRU, not {name}")
    _check_arguments(inner, name, inner_key)
    if _flag(inner, "go_backwards", inner_key, False):
        raise StackError(f"{inner_key}.go_backwards: Bidirectional runs the backward pass itself; "
                         "the wrapped layer must have go_backwards: false")
    merge_mode = layer.get("merge_mode", "concat")
    merge_mode = "none" if merge_mode is None else merge_mode
    if merge_mode not in MERGE_MODES:
        raise ConfigError(f"{key}.merge_mode: {merge_mode!r} is not one of {', '.join(MERGE_MODES)}")
    one_way, params, _ = _recurrent(inner, shape, inner_key, plans, name)
    output = one_way["output"]
    if merge_mode == "none":
        outputs = {"forward_output": output, "backward_output": output}
    elif merge_mode == "concat":
        outputs = {"output": (*output[:-1], 2 * output[-1])}
    else:
        outputs = {"output": output}
    for direction in ("forward", "backward"):
        outputs.update({
            f"{direction}_{s}": one_way[f"state_{s}"]
            for s in RECURRENT_STATES[name] if f"state_{s}" in one_way
        })
    return outputs, 2 * params, f"Bidirectional({name})"


def _dense(layer: dict, shape: Shape, key: str, plans: list):
    if len(shape) < 2 or shape[-1] is None:
        raise StackError(f"{key}: Dense needs a known last axis, gets {format_shape(shape)}")
    units = _positive_int(layer, "units", key)
    _activation(layer, "activation", key)
    use_bias = _flag(layer, "use_bias", key, True)
    params = shape[-1] * units + (units if use_bias else 0)
    return {"output": (*shape[:-1], units)}, params, "Dense"


def _lambda(layer: dict, shape: Shape, key: str, plans: list):
    function = layer.get("function")
    if function not in LAMBDA_FUNCTIONS:
        known = ", ".join(LAMBDA_FUNCTIONS)
        raise ConfigError(f"{key}.function: {function!r} is not a runner function; known: {known}")
    arguments = layer.get("arguments") or {}
    if not isinstance(arguments, dict) or sorted(arguments) != sorted(LAMBDA_FUNCTIONS[function]):
        expected = ", ".join(LAMBDA_FUNCTIONS[function]) or "none"
        raise ConfigError(f"{key}.arguments: {function} takes arguments: {expected}")
    for arg, value in arguments.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}.arguments.{arg}: must be a number, got {value!r}")
    output = (*shape, 1) if function == "expand_last_axis" else tuple(shape)
    return {"output": output}, 0, f"Lambda({function})"


def _dropout(layer: dict, shape: Shape, key: str, plans: list):
    _rate(layer, "rate", key)
    return {"output": tuple(shape)}, 0, "Dropout"


_RULES = {
    "SimpleRNN": _recurrent,
    "LSTM": _recurrent,
    "GRU": _recurrent,
    "Bidirectional": _bidirectional,
    "Dense": _dense,
    "Lambda": _lambda,
    "Dropout": _dropout,
}


def cudnn_eligible(layer: dict) -> bool:
    """Whether Keras may run this LSTM/GRU on the cuDNN kernel (when TensorFlow sees a GPU)."""
    return (layer.get("activation", "tanh") == "tanh"
            and layer.get("recurrent_activation", "sigmoid") == "sigmoid"
            and not layer.get("recurrent_dropout", 0)
            and not layer.get("unroll", False)
            and layer.get("use_bias", True)
            and (layer["_target_"] != "keras.layers.GRU" or layer.get("reset_after", True)))


def data_shape(input_shape: list, batch_size: int, timesteps: int, features: int) -> Shape:
    """The shape of the generated inputs: the model's declared input decides the rank."""
    if len(input_shape) not in (1, 2):
        raise ConfigError(
            f"model.input_shape: {list(input_shape)} must be [timesteps] or [timesteps, features]"
        )
    wanted = (timesteps, features)[: len(input_shape)]
    for axis, (declared, actual) in enumerate(zip(input_shape, wanted)):
        if declared is not None and declared != actual:
            knob = ("data.timesteps", "data.features")[axis]
            raise ConfigError(
                f"model.input_shape: the model takes {declared} on axis {axis + 1} "
                f"but {knob}={actual}"
            )
    return (batch_size, *wanted)


def describe(plan: StackPlan) -> list:
    """Plain rows for tables and shapes.json: index, layer, outputs, params."""
    rows = [{"index": "-", "layer": "Input", "outputs": {"input": list(plan.input_shape)},
             "param_count": 0}]
    for layer in plan.layers:
        rows.append({
            "index": layer.index,
            "layer": layer.label,
            "outputs": {k: list(v) for k, v in layer.outputs.items()},
            "param_count": layer.param_count,
        })
    return rows


def outputs_line(outputs: dict) -> str:
    """`output (4, 30, 6), forward_h (4, 3)`."""
    return ", ".join(f"{name} {format_shape(shape)}" for name, shape in outputs.items())
