"""Composed config -> a validated job spec, checked once: no run, no TensorFlow, one clear line.

Every check of a config lives here or in the oracle it calls (`runner.shapes`)."""

import dataclasses
import importlib.util
import math
import re
from dataclasses import dataclass
from typing import Optional, Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf

from runner.errors import ConfigError, StackError, dotted
from runner.schema import RunnerSchema
from runner.cost import JobCost, available_bytes, human_bytes, job_cost
from runner.interpolations import ProbeMemo, keys_needed, keys_read, written_of
from runner.shapes import StackPlan, plan_model
from runner.vocabulary import ALLOWED_TARGETS, KNOBS, closest_targets, did_you_mean, spell

POSITIVE = ("model.units", "model.batch_size", "data.batch_size", "data.timesteps",
            "data.features", "data.batches")
OPTIONAL = ("model.units",)  # needed only where a layer takes it
JIT_COMPILE = {"auto": "auto", "true": True, "false": False}  # the knob's words -> Keras's values
AXES = ("timesteps", "features")  # a model input's axes after the batch, as data.* names them


@dataclass(frozen=True)
class JobSpec:
    """Everything one job needs, resolved and checked; nothing is built here."""
    name: str  # the stack's name, e.g. "bilstm"
    label: str  # e.g. "bilstm return_sequences=True"
    config: dict  # the resolved config, plain Python (enums as their names)
    layers: list  # model.layers, resolved
    inputs: dict  # model input name -> the shape of its generated batches
    plan: Optional[StackPlan]  # as Keras declares it: batch None, timesteps None where any length
    expected: Optional[StackPlan]  # for the generated inputs: every size known
    refusal: Optional[StackError] = None  # a stack Keras cannot build: the run records why
    unused: tuple = ()  # knobs set on the command line that this stack does not take
    cost: Optional[JobCost] = None  # mult-adds and memory, from the expected shapes

    @property
    def seed(self) -> int:
        return self.config["seed"]

    @property
    def input_shape(self) -> tuple:
        """The first (usually only) input's generated shape."""
        return next(iter(self.inputs.values()))


def walk(node, key: str = ""):
    """(dotted key, leaf value) for every leaf of nested dicts and lists."""
    if isinstance(node, (DictConfig, dict)):
        items = node.items_ex(resolve=False) if isinstance(node, DictConfig) else node.items()
        for child_key, child in items:
            yield from walk(child, f"{key}.{child_key}" if key else str(child_key))
    elif isinstance(node, (ListConfig, list)):
        for index, child in enumerate(node):
            yield from walk(child, f"{key}.{index}")
    else:
        yield key, node


_CHECKED: dict = {}  # a sweep's cells, checked before its jobs run in the sweeper's process


def keep_checked(task: tuple, spec: JobSpec) -> None:
    """A sweep's cell, checked, kept for its job in this process: by the overrides it has."""
    _CHECKED[task] = spec


def checked(task: Sequence[str]) -> Optional[JobSpec]:
    """The spec a sweep checked for the job of these overrides, once; None where none was
    kept (a job alone, or in a launcher's worker), and the job checks its config itself."""
    return _CHECKED.pop(tuple(task), None)


def validate(cfg: DictConfig, typed: Sequence[str] = (),
             memo: Optional[ProbeMemo] = None) -> JobSpec:
    """The job's spec; ConfigError naming the dotted key and what is allowed when a value is
    unusable. A stack Keras cannot build is not refused here: its run records the reason.
    `typed`: the overrides as the user typed them, so that a knob typed for a stack that does
    not take it is named even at its default value. `memo`: what the grid's other cells of
    the same config-group choices taught about which keys the interpolations read."""
    unresolved = OmegaConf.to_container(cfg, resolve=False)
    leaves = list(walk(unresolved))
    written = written_of(cfg) if memo is not None else None  # as the probes read it
    _check_missing(cfg, leaves, memo, written)
    _unknown_keys(cfg, RunnerSchema, "")
    _check_targets(leaves)  # before anything is resolved: an interpolated target is refused too
    config = _resolved(cfg, dict(leaves))
    _check_ranges(config)
    # As Keras's compile takes it, recorded as typed (true, not the str field's 'True')
    config["jit_compile"] = JIT_COMPILE[str(config["jit_compile"]).lower()]
    taken = keys_read(cfg, KNOBS, under="model", memo=memo, written=written)
    typed_keys = {override.split("=", 1)[0].lstrip("+~") for override in typed}
    return _spec(config, taken, typed_keys)


def _check_missing(cfg: DictConfig, leaves: list, memo: Optional[ProbeMemo] = None,
                   written: Optional[dict] = None) -> None:
    """Every value left unset (`???`) that the job needs, all at once: a key a stack may leave
    out (`model.units`) is needed only where an interpolation reads it."""
    several = any(key.startswith("model.inputs.") for key, _ in leaves)
    unset = [key for key, value in leaves if value == "???"]
    # An optional key is needed where an interpolation fails while it is unset, and would
    # not with a value (`${oc.select:model.units,3}` does not need it)
    needed = keys_needed(cfg, [key for key in unset if key in OPTIONAL], memo, written)
    missing = [key for key in unset if (key not in OPTIONAL or key in needed)
               and not (key == "model.input_shape" and several)]  # model.inputs instead
    if missing:
        it = "it" if len(missing) == 1 else "them"
        raise ConfigError(f"{', '.join(missing)}: no value given (???); set {it} in the model "
                          f"file or on the command line, e.g. {missing[0]}=...")


def _resolved(cfg: DictConfig, unresolved: dict) -> dict:
    """Every `${...}` resolved; one that cannot be is refused naming its key and what to write."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    except OmegaConfBaseException as error:
        key = dotted(str(error.full_key or "")) or "config"
        written = unresolved.get(key, "")
        reason = str(error.msg or error).splitlines()[0]
        variable = re.search(r"Environment variable '([^']+)' not found", reason)
        if variable:
            name = variable.group(1)
            raise ConfigError(f"{key}: {written} reads ${name}, which is not set; set it, or "
                              f"give a default: ${{oc.env:{name},DEFAULT}}") from None
        if "Interpolation key" in reason:
            raise ConfigError(f"{key}: {written} names no key of the config; write a value, "
                              "or a key such as ${model.units}") from None
        raise ConfigError(f"{key}: cannot resolve {written}: {reason}") from None


def _check_targets(leaves: list) -> None:
    """The closed door: only the allowed Keras classes may be instantiated, at any depth."""
    for key, value in leaves:
        if key.rsplit(".", 1)[-1] == "_target_" and value not in ALLOWED_TARGETS:
            closest = ", ".join(closest_targets(str(value), 2))
            raise ConfigError(f"{key}: {value!r} is not allowed (closest: {closest}); "
                              f"--help lists all")


def _unknown_keys(node: DictConfig, schema, prefix: str) -> None:
    """Keys added with `+` that the schema does not know (Hydra refuses the others itself)."""
    fields = {field.name: field for field in dataclasses.fields(schema)}
    for key in node.keys():
        if key not in fields:
            raise ConfigError(f"{prefix}{key}: unknown key{did_you_mean(key, fields, prefix)}; "
                              f"known: {', '.join(fields)}")
        field_type = fields[key].type
        if dataclasses.is_dataclass(field_type):
            _unknown_keys(node[key], field_type, f"{prefix}{key}.")


def _check_ranges(config: dict) -> None:
    """The resolved config's numbers in their ranges (read from the plain dict: OmegaConf's
    select costs more than the rest of these checks)."""
    for key in POSITIVE:
        section, name = key.split(".")
        value = config[section].get(name)
        if value is not None and value != "???" and value < 1:
            raise ConfigError(f"{key}: must be a positive integer, got {value}")
    data = config["data"]
    if not math.isfinite(data["scale"]):
        raise ConfigError(f"data.scale: must be a finite number, got {data['scale']}")
    if config["seed"] < 0:
        raise ConfigError(f"seed: must be a non-negative integer, got {config['seed']}")
    if config["reference_rows"] < 0:
        raise ConfigError(f"reference_rows: must be 0 (every row) or a positive integer, "
                          f"got {config['reference_rows']}")
    for name in ("warmup", "repeats"):
        if config["timing"][name] < 0:
            raise ConfigError(f"timing.{name}: must be 0 or a positive integer, got "
                              f"{config['timing'][name]}")
    if str(config["jit_compile"]).lower() not in JIT_COMPILE:
        raise ConfigError(f"jit_compile: {config['jit_compile']!r} is not one of auto, true, "
                          "false")
    backend = config["backend"]
    if backend != "tensorflow" and importlib.util.find_spec(backend) is None:
        raise ConfigError(f"backend: {backend} is not installed here; pip install "
                          f"'rnn-shapes-runner[{backend}]' (docs/scaling.md: its GPU build)")
    if not config["tolerance"] > 0:
        raise ConfigError(f"tolerance: must be a positive number, got {config['tolerance']}")
    if not 0 <= data["padding"] < 1:
        raise ConfigError(f"data.padding: the fraction of each sequence that is padding, in "
                          f"[0, 1), got {data['padding']}")
    experiment = config["tracking"]["experiment"]
    if not (experiment or "").strip():
        raise ConfigError(f"tracking.experiment: must be a name, got {experiment!r}; "
                          "e.g. tracking.experiment=rnn-shapes")


def _spec(config: dict, taken: set, typed: set) -> JobSpec:
    """The oracle's checks of every layer's values, of the inputs' shapes and of what the data
    asks of the model (a fixed batch for stateful layers, a masking layer for padding)."""
    model, data = config["model"], config["data"]
    declared = model.get("inputs") or {"inputs": model["input_shape"]}
    if not isinstance(declared, dict) or not declared:
        raise ConfigError("model.inputs: name -> [timesteps] or [timesteps, features], e.g. "
                          "{encoder_tokens: [null], decoder_tokens: [null]}")
    keys = {name: f"model.inputs.{name}" if model.get("inputs") else "model.input_shape"
            for name in declared}
    inputs, not_taken = _data_shapes(declared, keys, data, typed)
    fixed = model.get("batch_size")
    if fixed is not None and fixed != data["batch_size"]:
        raise ConfigError(f"model.batch_size: the model takes batches of {fixed} but "
                          f"data.batch_size={data['batch_size']}")
    layers = model["layers"]
    label, unused = knob_label(model["name"], config, taken, typed)
    unused += not_taken
    try:
        expected = plan_model(layers, inputs)  # first: its errors name concrete sizes
        plan = plan_model(layers, {name: (fixed, *shape) for name, shape in declared.items()})
    except StackError as refusal:
        return JobSpec(model["name"], label, config, layers, inputs, None, None, refusal, unused)
    _check_data_against(expected, layers, data, fixed)
    cost = job_cost(layers, expected, config)
    if config["mode"] == "run":
        _check_fits(cost, data)
    return JobSpec(model["name"], label, config, layers, inputs, plan, expected, None, unused,
                   cost)


def _check_fits(cost: JobCost, data: dict, available=None) -> None:
    """A job whose estimated memory exceeds what the machine has free is refused before any run
    exists: it would only fail later, in NumPy or TensorFlow, as a FAILED run."""
    available = available_bytes() if available is None else available
    if available is not None and cost.memory_bytes > available:
        raise ConfigError(f"data.batch_size={data['batch_size']}: needs about "
                          f"{human_bytes(cost.memory_bytes)}, {human_bytes(available)} available; "
                          "lower data.batch_size or data.timesteps")


def _data_shapes(declared: dict, keys: dict, data: dict, typed: set) -> tuple:
    """(model input name -> the shape its batches are drawn at, the data sizes typed that no
    input takes). The model's own sizes are the data's; where it leaves an axis null,
    data.inputs.NAME.* fills it, else data.timesteps / data.features."""
    for name, shape in declared.items():
        if not isinstance(shape, (list, tuple)) or len(shape) not in (1, 2):
            raise ConfigError(f"{keys[name]}: {shape} must be [timesteps] or "
                              "[timesteps, features]")
    given = _input_sizes(data.get("inputs") or {}, declared)
    shapes = {}
    for name, shape in declared.items():
        sizes = list(shape)
        for axis, size in enumerate(shape):
            own = given[name].get(AXES[axis])
            if size is None:
                sizes[axis] = data[AXES[axis]] if own is None else own
            elif own is not None and own != size:
                raise ConfigError(f"data.inputs.{name}.{AXES[axis]}: {own}, but {keys[name]} "
                                  f"fixes {AXES[axis]} at {size}: set {keys[name]}="
                                  f"{_with(shape, axis, own)} to draw it at {own}")
        shapes[name] = (data["batch_size"], *sizes)
    not_taken = ()
    for axis, knob in enumerate(AXES):
        if f"data.{knob}" not in typed:
            continue
        value = data[knob]
        having = [name for name, shape in declared.items()
                  if len(shape) > axis and knob not in given[name]]
        if any(declared[name][axis] in (None, value) for name in having):
            continue
        if having:  # every such axis fixed at another size: the model file decides
            name = having[0]
            raise ConfigError(f"data.{knob}: {value}, but {keys[name]} fixes {knob} at "
                              f"{declared[name][axis]}: set {keys[name]}="
                              f"{_with(declared[name], axis, value)} to draw it at {value}")
        not_taken += (f"data.{knob}={value}",)  # no input has that axis, as merge_mode for an LSTM
    return shapes, not_taken


def _input_sizes(given: dict, declared: dict) -> dict:
    """data.inputs, checked against the model's inputs: name -> {axis name: size}."""
    sizes = {name: {} for name in declared}
    for name, axes in given.items():
        key = f"data.inputs.{name}"
        if name not in declared:
            raise ConfigError(f"{key}: the model has no input named {name!r}"
                              f"{did_you_mean(name, declared, 'data.inputs.')}; its inputs: "
                              f"{', '.join(declared)}")
        if not isinstance(axes, dict):
            raise ConfigError(f"{key}: must be {{timesteps: N, features: N}}, got {axes!r}; "
                              f"e.g. +{key}.timesteps=10")
        for axis, size in axes.items():
            if axis not in AXES:
                raise ConfigError(f"{key}.{axis}: unknown key{did_you_mean(axis, AXES, key + '.')}"
                                  "; known: timesteps, features")
            if size is None:
                continue
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ConfigError(f"{key}.{axis}: must be a positive integer, got {size!r}")
            if AXES.index(axis) >= len(declared[name]):
                raise ConfigError(f"{key}.{axis}: model input {name!r} is declared "
                                  f"{_with(declared[name], 0, declared[name][0])}, without "
                                  f"{axis}")
            sizes[name][axis] = size
    return sizes


def _with(shape, axis: int, size) -> str:
    """A declared shape with one axis changed, as an override writes it: `[30,3]`."""
    sizes = [size if index == axis else value for index, value in enumerate(shape)]
    return "[" + ",".join("null" if value is None else str(value) for value in sizes) + "]"


def _check_data_against(plan: StackPlan, layers: list, data: dict, fixed) -> None:
    stateful = [layer.index for layer in plan.layers if layer.stateful]
    if stateful and fixed is None:
        raise ConfigError(f"model.layers.{stateful[0]}.stateful: a stateful layer carries its "
                          "states from one batch to the next, so it needs a fixed batch: set "
                          "batch_size: ${data.batch_size} in the model file")
    masking = [layer for layer in layers
               if layer.get("mask_zero") or layer.get("_target_") == "keras.layers.Masking"]
    if data["padding"] > 0 and not masking:
        raise ConfigError(f"data.padding: {data['padding']} pads the end of each sequence, but no "
                          "layer masks the padding: set mask_zero: true on the Embedding "
                          "(+model.layers.N.mask_zero=true) or start with a keras.layers.Masking")


def knob_label(name: str, config: dict, taken: set, typed: set = frozenset()) -> tuple:
    """(`bilstm return_sequences=true merge_mode=sum`: the stack and the knobs it takes, beyond
    their defaults except return_sequences; the knobs typed, or set otherwise than their
    defaults, that it does not take)."""
    label = [name]
    if "return_sequences" in taken:
        label.append(f"return_sequences={spell(config['return_sequences'])}")
    for knob in ("return_state", "merge_mode"):
        if knob in taken and config[knob] != KNOBS[knob]:
            label.append(f"{knob}={spell(config[knob])}")
    unused = tuple(f"{knob}={spell(config[knob])}" for knob, default in KNOBS.items()
                   if knob not in taken and (knob in typed or config[knob] != default))
    return " ".join(label), unused
