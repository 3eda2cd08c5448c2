"""A fresh Keras session for every job of this process, at the cost of the job's own objects."""

import functools
import gc
import logging


class _NewModelRetracing(logging.Filter):
    """Every job builds a new model, so TensorFlow's "triggered tf.function retracing" warning
    is expected once per job; this drops that one message and nothing else."""

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


def fresh_session(seed: int, gpu_memory_growth: bool, precision: str = "float32") -> None:
    """Fresh layer names and graph state, seeded, in the job's precision: the same config
    gives the same numbers."""
    import keras

    from runner.device import allow_memory_growth

    if gpu_memory_growth:
        allow_memory_growth()  # before TensorFlow first touches a GPU
    _once_per_process()
    keras.backend.clear_session()
    keras.mixed_precision.set_dtype_policy(precision)  # the layers built next take it
    keras.utils.set_random_seed(seed)
