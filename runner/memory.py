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
    """Start TensorFlow's count of the first GPU's peak allocation; False without a GPU."""
    import tensorflow as tf

    if not tf.config.list_logical_devices("GPU"):
        return False
    tf.config.experimental.reset_memory_stats("GPU:0")
    return True


def gpu_peak_mb() -> float:
    import tensorflow as tf

    return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
