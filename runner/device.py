"""What the job ran on: device kind and name, framework and build versions."""

import functools
import os
import platform


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=None)
def _describe_device() -> tuple:
    return tuple(_device_tags().items())


def describe_device() -> dict:
    """Device tags for the run: `device.kind`, `device.name`, `device.count` and versions."""
    return dict(_describe_device())


def _device_tags() -> dict:
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        name = details.get("device_name", gpus[0].name)
        device = {"device.kind": "GPU", "device.name": name, "device.count": str(len(gpus))}
        if details.get("compute_capability"):
            device["gpu.compute_capability"] = ".".join(map(str, details["compute_capability"]))
        device["gpu.memory_growth"] = str(tf.config.experimental.get_memory_growth(gpus[0])).lower()
        driver = _nvidia_driver()
        if driver:
            device["gpu.driver_version"] = driver
    else:
        cpus = tf.config.list_physical_devices("CPU")
        device = {"device.kind": "CPU", "device.name": _cpu_name(), "device.count": str(len(cpus))}
    # 0: TensorFlow's own choice (as many threads as logical cores, for intra-op work)
    device["tf.intra_op_threads"] = str(tf.config.threading.get_intra_op_parallelism_threads())
    device["tf.inter_op_threads"] = str(tf.config.threading.get_inter_op_parallelism_threads())
    device.update({
        "tensorflow.version": tf.__version__,
        "keras.version": keras.__version__,
        "python.version": platform.python_version(),
        "cpu.cores": str(os.cpu_count()),
        "cuda.visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", "unset"),
    })
    build = tf.sysconfig.get_build_info()
    for key, tag in (("cuda_version", "cuda.build_version"), ("cudnn_version", "cudnn.build_version")):
        if build.get(key):
            device[tag] = str(build[key])
    return device


def _nvidia_driver() -> str:
    """The NVIDIA driver's version, as nvidia-smi reports it ("" where there is none)."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return ""
    query = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                           capture_output=True, text=True)
    return query.stdout.splitlines()[0].strip() if query.returncode == 0 and query.stdout else ""


def allow_memory_growth() -> None:
    """Let TensorFlow take GPU memory as it needs it, not all at once: jobs share a GPU box.

    Must run before TensorFlow first touches a GPU; later calls in the same process find it
    already set, which is fine."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # the GPU is initialised already: set by an earlier job
            pass
