"""Config -> a validated job spec: plain layer dicts, the oracle's shapes, the inputs' shape."""

from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from runner.safety import check_targets
from runner.shapes import StackPlan, data_shape, knob_label, plan_stack


@dataclass(frozen=True)
class JobSpec:
    name: str  # the stack's name, e.g. "bilstm"
    label: str  # e.g. "bilstm return_sequences=True"
    layers: list  # plain dicts, resolved; `_target_`s checked against the allowlist
    plan: StackPlan  # as Keras declares it: batch None, timesteps None where any length
    expected: StackPlan  # for the generated inputs: every size known
    input_shape: tuple  # of the generated inputs


def resolved(cfg: DictConfig) -> dict:
    """The job's config as plain Python: interpolations resolved, enums as their names."""
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)


def job_spec(cfg: DictConfig) -> JobSpec:
    """Validate the stack and compute every shape it will have; nothing is built here."""
    config = resolved(cfg)
    check_targets(config)
    model, data = config["model"], config["data"]
    input_shape = data_shape(model["input_shape"], data["batch_size"], data["timesteps"],
                             data["features"])
    layers = model["layers"]
    expected = plan_stack(layers, input_shape)  # first: its errors name concrete sizes
    plan = plan_stack(layers, (None, *model["input_shape"]))
    bidirectional = any(layer.get("_target_") == "keras.layers.Bidirectional" for layer in layers)
    label = knob_label(model["name"], config["return_sequences"], config["return_state"],
                       config["merge_mode"], bidirectional)
    return JobSpec(model["name"], label, layers, plan, expected, input_shape)
