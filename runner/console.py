"""A quiet console: the runner's own lines, not the libraries' start-up chatter.

`verbose=true`, or the libraries' own variables set by the user (TF_CPP_MIN_LOG_LEVEL,
MLFLOW_LOGGING_LEVEL), bring their logs back. What TensorFlow writes while it starts is read
before it reaches the terminal: the lines known to be noise on every start are dropped, and
every other line is written out as it was, so a real failure is never hidden."""

import contextlib
import functools
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Optional

# Written by TensorFlow's C++ side on every start, whatever the machine
NOISE = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "oneDNN custom operations are on",
    "Could not find cuda drivers on your machine",
    "rebuild TensorFlow with the appropriate compiler flags",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "only on platforms with AVX-512. Falling back to the default Eigen",  # masks, float16 on this CPU
    "TF-TRT Warning: Could not find TensorRT",  # TensorFlow 2.16 and 2.17, where TensorRT is not
)
# Written where no NVIDIA driver is installed: expected on a CPU machine, a failure on a GPU box
NO_DRIVER = ("failed call to cuInit",)


def quiet_libraries(verbose: bool) -> None:
    """Library log levels for this process and the ones it starts, unless the user set them."""
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's warnings and errors stay
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


def has_nvidia_gpu() -> bool:
    """Whether `nvidia-smi -L` lists a GPU on this machine, and the user did not hide it
    (`CUDA_VISIBLE_DEVICES=` or `-1`: the CPU, on purpose)."""
    if shutil.which("nvidia-smi") is None or os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return False
    listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return any(line.startswith("GPU ") for line in listing.stdout.splitlines())


def noise(line: str, gpu: bool) -> bool:
    return any(text in line for text in NOISE) or (not gpu and any(t in line for t in NO_DRIVER))


@contextlib.contextmanager
def tensorflow_logs_read(verbose: bool, kept: Optional[list] = None):
    """Within the block, what is written to file descriptor 2 (TensorFlow's C++ logs) is held;
    Python's own stderr goes on to the terminal. At the end the held lines are written out,
    less the known noise (and added to `kept`)."""
    if verbose or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":  # the user asked for all
        yield
        return
    sys.stderr.flush()
    held = tempfile.TemporaryFile()
    terminal = os.dup(2)
    python_stderr = sys.stderr
    sys.stderr = io.TextIOWrapper(os.fdopen(os.dup(terminal), "wb"), line_buffering=True)
    os.dup2(held.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(terminal, 2)
        os.close(terminal)
        sys.stderr.close()
        sys.stderr = python_stderr
        held.seek(0)
        text = held.read().decode(errors="replace")
        held.close()
        gpu = has_nvidia_gpu() if any(t in text for t in NO_DRIVER) else False
        lines = [re.sub(r"^[IWEF]\d{4} [\d:.]+\s+\d+ ", "", line)
                 for line in text.splitlines() if line.strip() and not noise(line, gpu)]
        for line in lines:
            print(line, file=sys.stderr)
        if kept is not None:
            kept.extend(lines)


@functools.lru_cache(maxsize=None)
def start_tensorflow(verbose: bool) -> Optional[str]:
    """Import Keras and let TensorFlow find its devices, quietly (see `tensorflow_logs_read`);
    once per process. Returns why TensorFlow does not use the NVIDIA GPU this machine has (a
    job then fails with it), or None."""
    said = []
    with tensorflow_logs_read(verbose, said):
        import keras  # noqa: F401
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
    if gpus or not has_nvidia_gpu():
        return None
    why = "; ".join(said[-3:]) or "it said nothing"
    return (f"device: this machine has an NVIDIA GPU but TensorFlow found none ({why}); "
            "install the gpu extra (pip install -e '.[gpu]'), or set CUDA_VISIBLE_DEVICES= "
            "to run on the CPU")
