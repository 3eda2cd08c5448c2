"""What a job returns: a typed result that travels one way, experiment -> recording."""

import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from runner.signals import Interrupted


@dataclass(frozen=True)
class Failure:
    """How a job failed, as its run records it: made where the exception is, sent anywhere."""
    line: str  # `RuntimeError: injected fault`
    traceback: str
    status: str  # FAILED, or KILLED for a signal

    @classmethod
    def of(cls, error: BaseException) -> "Failure":
        return cls(line=f"{type(error).__name__}: {error}",
                   traceback="".join(traceback.format_exception(
                       type(error), error, error.__traceback__)),
                   status="KILLED" if isinstance(error, Interrupted) else "FAILED")


@dataclass(frozen=True)
class Picture:
    """A picture the recording process draws: an output over its timesteps."""
    file_name: str
    output: np.ndarray  # (items, timesteps, units), already cut to what is drawn
    title: str


@dataclass(frozen=True)
class JobResult:
    label: str  # `bilstm return_sequences=True`
    params: dict  # every leaf of the resolved config, flattened: `model.layers.0.units` -> "3"
    artifact_dir: Path  # the files the run keeps
    outputs: dict = field(default_factory=dict)  # the model's named outputs -> shape
    tags: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    pictures: tuple = ()  # of Picture
    error: Optional[Failure] = None
    unused: tuple = ()  # knobs given that the stack does not take: `merge_mode=sum`

    @property
    def line(self) -> str:
        """`bilstm return_sequences=true -> output (4, 30, 6)`, as the notebook prints it."""
        return self.line_as(self.label)

    def line_as(self, name: str) -> str:
        """The line, the job named otherwise (a sweep's cell by its overrides)."""
        if self.error is not None:
            first = self.error.line.splitlines()[0] if self.error.line else ""
            line = f"{name} -> {self.error.status}: {first}"
        else:
            line = f"{name} -> " + ", ".join(
                f"{output} {tuple(shape)}" for output, shape in self.outputs.items())
        if self.unused:
            line += f"  (not taken by this stack: {', '.join(self.unused)})"
        return line
