"""mode=explain: the oracle's table for a config, without TensorFlow, a store or files."""

from dataclasses import dataclass
from typing import Sequence

from omegaconf import DictConfig

from runner.report import explain_table
from runner.validate import validate


@dataclass(frozen=True)
class Explained:
    """What `mode=explain` prints for one config."""
    ok: bool  # False: a stack Keras cannot build
    text: str  # the oracle's table, or the line that says why the stack cannot be built


def explain_config(cfg: DictConfig, name: str, typed: Sequence[str] = (), memo=None) -> Explained:
    """The oracle's table for this config, headed by its label and `name` (its overrides, as
    `typed`); a value no run could use raises validate()'s ConfigError, one line. `memo`: as
    validate() takes it."""
    spec = validate(cfg, typed, memo)
    if spec.refusal is not None:
        return Explained(False, f"{name} -> invalid: {spec.refusal}")
    return Explained(True, explain_table(f"{spec.label}  [{name}]", spec.expected,
                                         spec.plan, spec.cost))
