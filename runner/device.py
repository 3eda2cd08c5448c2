"""What the job ran on, as its Keras backend sees it: device kind and name, framework and build
versions. Only the tensorflow backend imports TensorFlow."""

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


def gpu_count(backend: str) -> int:
    """How many GPUs the backend sees (whether a job can use the NVIDIA GPU this machine has)."""
    if backend == "jax":
        import jax

        return sum(device.platform == "gpu" for device in jax.devices())
    if backend == "torch":
        import torch

        return torch.cuda.device_count()
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


@functools.lru_cache(maxsize=None)
def _describe_device(backend: str) -> tuple:
    return tuple(_device_tags(backend).items())


def describe_device() -> dict:
    """Device tags for the run, as the process's Keras backend sees its devices: `device.kind`,
    `device.name`, `device.count`, `backend`, `backend.devices` and versions."""
    import keras

    return dict(_describe_device(keras.backend.backend()))


def _device_tags(backend: str) -> dict:
    import keras

    tags = {"tensorflow": _tensorflow_tags, "jax": _jax_tags, "torch": _torch_tags}[backend]()
    device = {"backend": backend, **tags}
    device.update({
        "keras.version": keras.__version__,
        "python.version": platform.python_version(),
        "cpu.cores": str(os.cpu_count()),
        "cuda.visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", "unset"),
    })
    if device["device.kind"] == "GPU":
        driver = _nvidia_driver()
        if driver:
            device["gpu.driver_version"] = driver
    return device


def _tensorflow_tags() -> dict:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        name = details.get("device_name", gpus[0].name)
        device = {"device.kind": "GPU", "device.name": name, "device.count": str(len(gpus))}
        if details.get("compute_capability"):
            device["gpu.compute_capability"] = ".".join(map(str, details["compute_capability"]))
        device["gpu.memory_growth"] = str(tf.config.experimental.get_memory_growth(gpus[0])).lower()
    else:
        cpus = tf.config.list_physical_devices("CPU")
        device = {"device.kind": "CPU", "device.name": _cpu_name(), "device.count": str(len(cpus))}
    device["backend.version"] = tf.__version__
    device["backend.devices"] = ", ".join(d.name for d in tf.config.list_physical_devices())
    # 0: TensorFlow's own choice (as many threads as logical cores, for intra-op work)
    device["tf.intra_op_threads"] = str(tf.config.threading.get_intra_op_parallelism_threads())
    device["tf.inter_op_threads"] = str(tf.config.threading.get_inter_op_parallelism_threads())
    device["tensorflow.version"] = tf.__version__
    build = tf.sysconfig.get_build_info()
    for key, tag in (("cuda_version", "cuda.build_version"), ("cudnn_version", "cudnn.build_version")):
        if build.get(key):
            device[tag] = str(build[key])
    return device


def _jax_tags() -> dict:
    import jax
    import jaxlib

    devices = jax.devices()  # the default platform's: the GPUs where JAX has one, else the CPU
    first = devices[0]
    if first.platform == "cpu":
        device = {"device.kind": "CPU", "device.name": _cpu_name()}
    else:
        device = {"device.kind": first.platform.upper(), "device.name": first.device_kind}
    if first.platform == "gpu":
        if getattr(first, "compute_capability", None):
            device["gpu.compute_capability"] = str(first.compute_capability)
        # as jaxlib reads it when JAX first touches the GPU (session.prepare_backend_environment)
        preallocate = os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE", "")
        device["gpu.memory_growth"] = str(preallocate in ("false", "False", "0")).lower()
    device.update({"device.count": str(len(devices)), "backend.version": jax.__version__,
                   "backend.devices": str(devices), "jax.jaxlib_version": jaxlib.__version__})
    return device


def _torch_tags() -> dict:
    import torch

    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        device = {"device.kind": "GPU", "device.name": torch.cuda.get_device_name(0),
                  "device.count": str(count),
                  "gpu.compute_capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
                  "backend.devices": ", ".join(f"cuda:{index}" for index in range(count))}
    else:  # PyTorch lists no CPU devices: one, as TensorFlow and JAX count it
        device = {"device.kind": "CPU", "device.name": _cpu_name(), "device.count": "1",
                  "backend.devices": "cpu"}
    device["backend.version"] = torch.__version__
    if torch.version.cuda is not None:  # None in a CPU build
        device["torch.cuda_version"] = torch.version.cuda
    device["torch.num_threads"] = str(torch.get_num_threads())
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
    already set, which is fine. TensorFlow only: it imports TensorFlow."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # the GPU is initialised already: set by an earlier job
            pass
