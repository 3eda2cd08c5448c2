"""How much memory this process holds, and the most it held since a job began."""

import os
import re


def resident_mb() -> float:
    """This process's resident memory now, in MiB (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


def reset_peak() -> None:
    """Start counting the process's peak resident memory afresh (Linux: clear_refs 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass


def peak_mb() -> float:
    """The process's peak resident memory since `reset_peak`, in MiB (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/status") as status:
            return int(re.search(r"VmHWM:\s+(\d+)", status.read()).group(1)) / 1024
    except (OSError, AttributeError):
        return 0.0


def reset_gpu_peak() -> bool:
    """Start the backend's count of the first GPU's peak allocation; False without a GPU.

    TensorFlow and PyTorch reset their counters. JAX has no reset: its `peak_bytes_in_use`
    counts from the process's start, so `gpu_peak_mb` there is the process's peak so far (a
    job alone in its process: the job's). False too where JAX keeps no memory statistics."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        return _jax_gpu_stats() is not None
    if backend == "torch":
        import torch

        if not torch.cuda.is_available():
            return False
        torch.cuda.reset_peak_memory_stats(0)
        return True
    import tensorflow as tf

    if not tf.config.list_logical_devices("GPU"):
        return False
    tf.config.experimental.reset_memory_stats("GPU:0")
    return True


def gpu_peak_mb() -> float:
    """The first GPU's peak allocation since `reset_gpu_peak`, in MiB, by the backend's count
    (JAX: since the process began)."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        return _jax_gpu_stats()["peak_bytes_in_use"] / 2**20
    if backend == "torch":
        import torch

        return torch.cuda.max_memory_allocated(0) / 2**20
    import tensorflow as tf

    return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20


def _jax_gpu_stats():
    """JAX's memory statistics of its first GPU, or None (no GPU, or none kept)."""
    import jax

    first = jax.local_devices()[0]
    if first.platform != "gpu":
        return None
    stats = first.memory_stats()
    return stats if stats and "peak_bytes_in_use" in stats else None
