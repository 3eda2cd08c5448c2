"""Each Keras backend in a process of its own: the device tags a job records there, its seeds,
and no TensorFlow imported where the backend is JAX or PyTorch."""

import importlib.metadata
import os
import platform
import re

import pytest

from helpers import probe_backend
from runner.device import _cpu_name
from runner.session import prepare_backend_environment


def _common_tags() -> dict:
    return {"keras.version": importlib.metadata.version("keras"),
            "python.version": platform.python_version(), "cpu.cores": str(os.cpu_count()),
            "cuda.visible_devices": ""}


def _expected_tags(backend: str) -> dict:
    """The tags of a CPU-only process (CUDA_VISIBLE_DEVICES empty) on `backend`."""
    version = importlib.metadata.version
    cpu = {"device.kind": "CPU", "device.name": _cpu_name(), "device.count": "1"}
    return {
        "tensorflow": {**cpu, "backend.version": version("tensorflow"),
                       "backend.devices": "/physical_device:CPU:0",
                       "tf.intra_op_threads": "0", "tf.inter_op_threads": "0",
                       "tensorflow.version": version("tensorflow")},
        "jax": {**cpu, "backend.version": version("jax"), "backend.devices": "[CpuDevice(id=0)]",
                "jax.jaxlib_version": version("jaxlib")},
        "torch": {**cpu, "backend.version": version("torch"), "backend.devices": "cpu"},
    }[backend] | {"backend": backend, **_common_tags()}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])  # TensorFlow's: tests/test_cli.py
def test_a_job_on_each_backend_records_that_backends_devices(backend, tmp_path):
    """The GPUs hidden (CUDA_VISIBLE_DEVICES empty), so every machine gives the CPU's tags."""
    probe = probe_backend(tmp_path, backend, CUDA_VISIBLE_DEVICES="")
    tags = probe["tags"]
    # what the build says, not the machine: TensorFlow's Linux wheel names its CUDA either way
    build = {key: tags.pop(key) for key in ("cuda.build_version", "cudnn.build_version",
                                            "torch.cuda_version") if key in tags}
    assert all(re.fullmatch(r"\d+(\.\d+)*", value) for value in build.values()), build
    assert ("torch.cuda_version" in build) == (
        backend == "torch" and not tags["backend.version"].endswith("+cpu"))
    if backend == "torch":
        assert int(tags.pop("torch.num_threads")) >= 1  # PyTorch's own count of the cores
    assert tags == _expected_tags(backend)
    assert (probe["on_gpu"], probe["gpu_peak_mb"]) == (False, None)
    # TensorFlow's graph says whether cuDNN ran (never on a CPU); the others leave none to read
    assert probe["cudnn_used"] is (False if backend == "tensorflow" else None)
    assert probe["same_seed_same_weights"] and probe["other_seed_other_weights"]
    assert probe["preallocate"] == ("false" if backend == "jax" else None)
    assert probe["tensorflow_imported"] is (backend == "tensorflow")


@pytest.mark.parametrize("backend, growth, before, after", [
    ("jax", True, None, "false"),
    ("jax", True, "true", "true"),  # the user's own setting is kept
    ("jax", False, None, None),
    ("torch", True, None, None),
    ("tensorflow", True, None, None),  # set after TensorFlow's import, by fresh_session
])
def test_jax_alone_is_told_before_its_import_to_take_gpu_memory_as_needed(
        backend, growth, before, after, monkeypatch):
    monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE", raising=False)
    if before is not None:
        monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", before)
    prepare_backend_environment(backend, growth)
    assert os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE") == after
