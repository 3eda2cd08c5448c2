"""Check a composed config before anything starts: no run, no TensorFlow, one readable line."""

import dataclasses
import difflib
import math

from omegaconf import DictConfig, OmegaConf

from runner.safety import check_targets, walk
from runner.schema import RunnerSchema
from runner.shapes import ConfigError, StackError
from runner.spec import job_spec

POSITIVE = ("model.units", "data.batch_size", "data.timesteps", "data.features")


def _unknown_keys(node: DictConfig, schema, prefix: str) -> None:
    fields = {field.name: field for field in dataclasses.fields(schema)}
    for key in node.keys():
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
            raise ConfigError(f"{prefix}{key}: unknown key{hint}; known: {', '.join(fields)}")
        field_type = fields[key].type
        if dataclasses.is_dataclass(field_type):
            _unknown_keys(node[key], field_type, f"{prefix}{key}.")


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError naming the dotted key and what is allowed; a stack Keras cannot build
    (StackError) is left to the job, whose run records Keras's refusal."""
    missing = [key for key, value in walk(OmegaConf.to_container(cfg, resolve=False), "")
               if value == "???"]
    if missing:
        raise ConfigError(f"{missing[0]}: no value given (???); set it, e.g. {missing[0]}=...")
    _unknown_keys(cfg, RunnerSchema, "")
    for key in POSITIVE:
        value = OmegaConf.select(cfg, key)
        if value < 1:
            raise ConfigError(f"{key}: must be a positive integer, got {value}")
    if not math.isfinite(cfg.data.scale):
        raise ConfigError(f"data.scale: must be a finite number, got {cfg.data.scale}")
    if cfg.seed < 0:
        raise ConfigError(f"seed: must be a non-negative integer, got {cfg.seed}")
    if cfg.reference_rows < 0:
        raise ConfigError(f"reference_rows: must be 0 (every row) or a positive integer, "
                          f"got {cfg.reference_rows}")
    if not cfg.tolerance > 0:
        raise ConfigError(f"tolerance: must be a positive number, got {cfg.tolerance}")
    check_targets(OmegaConf.to_container(cfg, resolve=False))  # an interpolated target is refused
    try:
        job_spec(cfg)  # the oracle's checks of every layer's values and of the input's shape
    except StackError:
        pass  # well-formed, but Keras cannot build it: the job records that refusal
