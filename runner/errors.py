"""The runner's own errors: each message starts with the dotted key at fault."""

import re


def dotted(key: str) -> str:
    """A key as the runner names it: OmegaConf's `model.layers[5]` as `model.layers.5`."""
    return re.sub(r"\[(\d+)\]", r".\1", key)


class ConfigError(ValueError):
    """A value no run could use; the message says what is allowed. Refused before any run."""


class StackError(ValueError):
    """Valid values, but a stack Keras cannot build: its run ends FAILED with the reason."""


class CheckError(RuntimeError):
    """Keras disagrees with the shape oracle or the NumPy reference: the run fails."""


class DeviceError(RuntimeError):
    """The machine has a device that TensorFlow cannot use: the run fails rather than run on
    another one unnoticed."""
