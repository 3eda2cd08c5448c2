"""A fresh Keras session for every job of this process, at the cost of the job's own objects."""

import functools
import gc
import logging
import os
import random

import numpy as np


class _NewModelRetracing(logging.Filter):
    """Every job builds a new model, so TensorFlow's "triggered tf.function retracing" warning
    is expected once per job; this drops that one message and nothing else. A filter on a
    logger's name: it imports nothing, and on other backends nothing reaches it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@functools.lru_cache(maxsize=None)
def _once_per_process() -> None:
    """Move every object alive now (TensorFlow, Keras, Hydra: modules that live as long as
    the process) out of the garbage collector's sight. Each job's `clear_session()` collects
    garbage; without this it walks those half-million objects every time (about 0.27 s a job
    on a 2-core machine), with it only the jobs' own."""
    logging.getLogger("tensorflow").addFilter(_NewModelRetracing())
    gc.freeze()


def prepare_backend_environment(backend: str, gpu_memory_growth: bool) -> None:
    """Set what a backend reads from the environment when it starts: call it before Keras is
    imported. JAX takes 75% of a GPU's memory at its first use unless
    XLA_PYTHON_CLIENT_PREALLOCATE=false; a value the user set is kept. TensorFlow's memory
    growth is set after its import (`fresh_session`), and PyTorch's caching allocator takes
    memory as it needs it already."""
    if backend == "jax" and gpu_memory_growth:
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


def fresh_session(seed: int, gpu_memory_growth: bool, precision: str = "float32") -> None:
    """Fresh layer names and graph state, seeded, in the job's precision: the same config
    gives the same numbers."""
    import keras

    backend = keras.backend.backend()
    if gpu_memory_growth and backend == "tensorflow":
        from runner.device import allow_memory_growth

        allow_memory_growth()  # before TensorFlow first touches a GPU
    _once_per_process()
    keras.backend.clear_session()
    keras.mixed_precision.set_dtype_policy(precision)  # the layers built next take it
    if backend == "tensorflow":
        keras.utils.set_random_seed(seed)
    else:
        _seed_without_tensorflow(seed, backend)


def _seed_without_tensorflow(seed: int, backend: str) -> None:
    """Seed what `keras.utils.set_random_seed` seeds except TensorFlow, which that function
    imports wherever it is installed, whatever the backend. After `clear_session` Keras makes
    its global SeedGenerator anew from Python's `random`, as it does every unseeded
    initializer's and layer's seed."""
    random.seed(seed)
    np.random.seed(seed)
    if backend == "torch":
        import torch

        torch.manual_seed(seed)
