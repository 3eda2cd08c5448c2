"""The shape oracle: every layer's output shapes, masks and parameter counts, from config alone.

Pure Python on purpose: `mode=explain` and validation use it without importing TensorFlow, and
every real run compares Keras's shapes, masks and `count_params()` with what is computed here.

A model is a list of layers. Each reads the layer before it, unless it names what it reads
(`input: NAME`, a model input or a layer's `name`); a recurrent layer may start from another
layer's states (`initial_state: NAME`). The last layer of the list gives the model's output.
"""

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

from runner.errors import ConfigError, StackError
from runner.shape_rules import FLOWING, RULES, Context, check_arguments, class_name
from runner.vocabulary import HALVING

Shape = tuple  # of Optional[int]; None where the size is not known (batch, or any timesteps)


@dataclass(frozen=True)
class Halving:
    """An activation that halves the last axis of a layer's arrays, which Keras's symbolic
    graph ignores."""
    activation: str  # e.g. `glu`
    index: int  # the layer that has it

    def __str__(self) -> str:
        return f"{self.activation} on model.layers.{self.index}"


@dataclass(frozen=True)
class LayerPlan:
    index: int
    label: str  # e.g. "Bidirectional(LSTM)"
    outputs: dict  # result name -> shape, in the order Keras returns them
    param_count: int
    given: frozenset = frozenset()  # the arguments its config gives (the wrapped layer's too)
    name: Optional[str] = None  # its `name`, where the config gives one
    source: str = ""  # what it reads: a model input's name, or `model.layers.N`
    initial_state: Optional[int] = None  # the layer whose states start it
    masked: frozenset = frozenset()  # its outputs that carry a Keras mask
    stateful: bool = False
    note: str = ""  # what a reader would not guess, e.g. a mask Keras does not apply
    # Keras's symbolic shapes, where they differ from the arrays' (`outputs`): an activation
    # that halves the last axis, here or in a layer before, which Keras's symbolic graph ignores
    symbolic: dict = field(default_factory=dict)
    symbolic_cause: Optional[Halving] = None  # what Keras's symbolic graph ignores


@dataclass(frozen=True)
class StackPlan:
    inputs: dict  # model input name -> shape, batch first
    layers: list = field(default_factory=list)  # in the order they are computed
    outputs: dict = field(default_factory=dict)  # the model's named outputs -> shape
    masked: frozenset = frozenset()  # the model's outputs that carry a mask
    tokens: dict = field(default_factory=dict)  # input -> vocabulary of the Embedding it feeds
    last: int = 0  # the layer whose output is the model's output
    holder: Optional[int] = None  # the layer whose states are the model's, if any

    @property
    def param_count(self) -> int:
        return sum(layer.param_count for layer in self.layers)

    @property
    def input_shape(self) -> Shape:
        """The first (usually only) model input's shape."""
        return next(iter(self.inputs.values()))

    @property
    def stateful(self) -> bool:
        return any(layer.stateful for layer in self.layers)


def format_shape(shape) -> str:
    """A shape as the notebook prints it: `(4, 30, 6)`."""
    return str(tuple(shape))


def plan_stack(layers: list, input_shape: Shape) -> StackPlan:
    """A stack with one input, named `inputs`."""
    return plan_model(layers, {"inputs": tuple(input_shape)})


def plan_model(layers: list, inputs: dict) -> StackPlan:
    """Every layer's outputs, masks and parameter count for inputs of these shapes (batch
    first), computed in the order the layers depend on each other."""
    if not layers:
        raise ConfigError("model.layers: a stack needs at least one layer")
    kinds = [class_name(layer, f"model.layers.{i}") for i, layer in enumerate(layers)]
    names = _names(layers, inputs)
    sources = [_source(layers, i, inputs, names) for i in range(len(layers))]
    starts = [_initial_state(layers, i, names) for i in range(len(layers))]
    consumers = {start for start in starts if start is not None}
    plans = {}
    for index in _order(layers, sources, starts, names):
        layer, key = layers[index], f"model.layers.{index}"
        check_arguments(layer, kinds[index], key)
        source = sources[index]
        if isinstance(source, str):  # a model input
            shape, masked, feeding = inputs[source], False, None
        else:
            feeding = plans[source]
            flowing = [name for name in feeding.outputs if name in FLOWING]
            if flowing != ["output"]:
                raise StackError(
                    f"{key}: merge_mode=none makes model.layers.{source} return two sequences, "
                    "which no further layer can take; use merge_mode concat|sum|mul|ave")
            shape, masked = feeding.outputs["output"], "output" in feeding.masked
        start = starts[index]
        context = Context(key=key, feeding=feeding,
                          input_name=source if isinstance(source, str) else None, masked=masked,
                          initial_state=None if start is None else _states(plans[start]),
                          initial_from=None if start is None else layers[start].get("name"))
        outputs, params, label, masked_out = RULES[kinds[index]](layer, shape, context)
        symbolic, cause = _symbolic(layers, index, kinds[index], context, shape, params, label)
        states = [name for name in outputs if name not in FLOWING]
        if states and index not in consumers and index != _last_recurrent(kinds):
            raise StackError(
                f"{_state_key(layer, key)}: only the last recurrent layer may return its states, "
                "unless a layer takes them as its initial_state; an inner layer's states cannot "
                "flow on")
        given = frozenset(layer) | frozenset(f"layer.{arg}" for arg in layer.get("layer") or {})
        plans[index] = LayerPlan(
            index, label, dict(outputs), params, given, layer.get("name"),
            source if isinstance(source, str) else f"model.layers.{source}", start,
            frozenset(name for name in outputs if name in FLOWING and masked_out),
            bool(layer.get("stateful") or (layer.get("layer") or {}).get("stateful")),
            # Keras gives no mask to a layer called with a second tensor (its initial state)
            "mask not applied: initial_state" if masked and start is not None else "",
            {} if symbolic == outputs else dict(symbolic), None if symbolic == outputs else cause)
    return _model_plan(layers, kinds, inputs, plans, consumers)


def _symbolic(layers: list, index: int, kind: str, context: Context, shape: Shape,
              params: int, label: str) -> tuple:
    """(the outputs Keras's symbolic graph gives this layer, the Halving that graph ignores).
    Keras builds a layer's weights from the symbolic shape it reads,
    so a layer with weights that reads a wrong symbolic last axis is refused: every prediction
    would fail."""
    feeding = context.feeding
    read = shape if feeding is None else feeding.symbolic.get("output", shape)
    outputs, symbolic_params, _, _ = RULES[kind](layers[index], read, dataclasses.replace(
        context, symbolic=True))
    if feeding is not None and feeding.symbolic:
        cause = feeding.symbolic_cause
    else:
        cause = Halving(_halving_activation(layers[index]), index)
    if symbolic_params != params:
        activation = cause.activation
        raise ConfigError(
            f"{context.key}: {cause} halves the last axis of the arrays this {label} reads to "
            f"{shape[-1]}, but Keras's symbolic shape keeps {read[-1]} and builds its weights "
            f"for {read[-1]}, so every prediction would fail; give {activation} to the last "
            "layer, or follow it only by layers without weights (Dropout, Masking)")
    return outputs, cause


def _halving_activation(layer: dict) -> Optional[str]:
    """The activation of a layer (or of the layer it wraps) that halves the last axis, if any."""
    inner = layer.get("layer") if isinstance(layer.get("layer"), dict) else {}
    return next((activation for activation in (layer.get("activation"), inner.get("activation"))
                 if activation in HALVING), None)


def _model_plan(layers, kinds, inputs, plans, consumers) -> StackPlan:
    last = plans[len(layers) - 1]
    outputs = {k: v for k, v in last.outputs.items() if k in FLOWING}
    masked = frozenset(k for k in outputs if k in last.masked)
    holder = _last_recurrent(kinds)
    holder = None if holder is None or holder in consumers else holder
    if holder is not None:
        outputs.update({k: v for k, v in plans[holder].outputs.items() if k not in FLOWING})
    tokens = {}
    for plan, kind in ((plans[i], kinds[i]) for i in sorted(plans)):
        if kind == "Embedding" and plan.source in inputs:
            tokens[plan.source] = layers[plan.index]["input_dim"]
    for name in tokens:
        readers = [p.index for p in plans.values() if p.source == name]
        floats = [i for i in readers if kinds[i] != "Embedding"]
        if floats:
            raise ConfigError(f"model.layers.{floats[0]}.input: model input {name!r} holds token "
                              "ids for an Embedding; this layer takes floats: give it its own "
                              "model input")
    order = [plans[i] for i in plans]
    return StackPlan(dict(inputs), order, outputs, masked, tokens, len(layers) - 1, holder)


def _names(layers: list, inputs: dict) -> dict:
    """Layer name -> index, every name unique and none an input's."""
    names = {}
    for index, layer in enumerate(layers):
        name = layer.get("name")
        if name is None:
            continue
        if not isinstance(name, str) or not name:
            raise ConfigError(f"model.layers.{index}.name: must be a name, got {name!r}")
        if name in names or name in inputs:
            where = f"model.layers.{names[name]}" if name in names else "a model input"
            raise ConfigError(f"model.layers.{index}.name: {name!r} is already {where}'s name")
        names[name] = index
    return names


def _source(layers: list, index: int, inputs: dict, names: dict):
    """What a layer reads: a model input's name (str) or a layer's index (int)."""
    wanted = layers[index].get("input")
    if wanted is None:
        return next(iter(inputs)) if index == 0 else index - 1
    if wanted in inputs:
        return wanted
    if wanted in names:
        return names[wanted]
    known = ", ".join([*inputs, *names]) or "none"
    raise ConfigError(f"model.layers.{index}.input: {wanted!r} is neither a model input nor a "
                      f"layer's name; known: {known}")


def _initial_state(layers: list, index: int, names: dict) -> Optional[int]:
    wanted = layers[index].get("initial_state")
    if wanted is None:
        return None
    if wanted not in names:
        known = ", ".join(names) or "none: give the layer a name"
        raise ConfigError(f"model.layers.{index}.initial_state: {wanted!r} is not a layer's name;"
                          f" known: {known}")
    return names[wanted]


def _order(layers: list, sources: list, starts: list, names: dict) -> list:
    """The layers' indices, each after what it reads; a cycle is refused, naming it."""
    label = {i: layers[i].get("name") or f"model.layers.{i}" for i in range(len(layers))}
    order, state = [], {}

    def visit(index: int, trail: list) -> None:
        if state.get(index) == "done":
            return
        if state.get(index) == "open":
            cycle = trail[trail.index(index):] + [index]
            raise ConfigError(f"model.layers.{index}.input: a cycle between layers: "
                              + " -> ".join(label[i] for i in cycle)
                              + "; a layer reads a model input or a layer before it")
        state[index] = "open"
        for before in (sources[index], starts[index]):
            if isinstance(before, int):
                visit(before, trail + [index])
        state[index] = "done"
        order.append(index)

    for index in range(len(layers)):
        visit(index, [])
    return order


def _states(plan: LayerPlan) -> list:
    return [(name, shape) for name, shape in plan.outputs.items() if name not in FLOWING]


def _last_recurrent(kinds: list) -> Optional[int]:
    """The last recurrent layer of the list: the one whose states may be the model's."""
    recurrent = [i for i, kind in enumerate(kinds)
                 if kind in ("SimpleRNN", "LSTM", "GRU", "RNN", "Bidirectional")]
    return recurrent[-1] if recurrent else None


def _state_key(layer: dict, key: str) -> str:
    return f"{key}.layer.return_state" if "layer" in layer else f"{key}.return_state"


def describe(plan: StackPlan) -> list:
    """Plain rows for tables and shapes.json: index, layer, what it reads, outputs, params."""
    rows = [{"index": "-", "layer": _input_label(plan, name), "outputs": {"input": list(shape)},
             "param_count": 0, "reads": "", "masked": []} for name, shape in plan.inputs.items()]
    names = {layer.index: layer.name or str(layer.index) for layer in plan.layers}
    for layer in plan.layers:
        reads = layer.source if layer.source in plan.inputs else names[
            int(layer.source.rsplit(".", 1)[-1])]
        if layer.initial_state is not None:
            reads += f", states of {names[layer.initial_state]}"
        rows.append({
            "index": layer.index,
            "layer": " ".join(filter(None, [layer.label, layer.name,
                                            f"({layer.note})" if layer.note else ""])),
            "outputs": {k: list(v) for k, v in layer.outputs.items()},
            "param_count": layer.param_count,
            "reads": reads,
            "masked": sorted(layer.masked),
        })
    return rows


def symbolic_finding(symbolic: dict, arrays: dict) -> str:
    """`Keras's symbolic shape output (None, 10), its arrays output (4, 5)`: what a run records
    where Keras's symbolic graph disagrees with what it predicts."""
    return f"Keras's symbolic shape {outputs_line(symbolic)}, its arrays {outputs_line(arrays)}"


def agrees(symbolic: Shape, array: Shape) -> bool:
    """Whether a symbolic shape (None where any size) fits an array's shape."""
    return len(symbolic) == len(array) and all(
        size is None or size == actual for size, actual in zip(symbolic, array))


def _input_label(plan: StackPlan, name: str) -> str:
    """`Input decoder (token ids < 2000)`: its name where there are several, and what it holds."""
    label = f"Input {name}" if len(plan.inputs) > 1 else "Input"
    return f"{label} (token ids < {plan.tokens[name]})" if name in plan.tokens else label


def outputs_line(outputs: dict) -> str:
    """`output (4, 30, 6), forward_h (4, 3)`."""
    return ", ".join(f"{name} {format_shape(shape)}" for name, shape in outputs.items())
