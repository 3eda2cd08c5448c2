"""On a GPU box (the gpu extra installed): jobs run on the GPU, with memory growth, cuDNN where
the config allows it, and the same checks against the oracle and the NumPy reference. Each
Keras backend whose CUDA build is installed sees the GPU and counts its memory."""

import importlib.metadata
import importlib.util
import re
import shutil
import subprocess

import pytest

from helpers import probe_backend, runs_of


def _gpu_count() -> int:
    if shutil.which("nvidia-smi") is None:
        return 0
    listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return sum(line.startswith("GPU ") for line in listing.stdout.splitlines())


def _installed(distribution: str) -> str:
    """The installed version of a distribution, "" where it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ""


NO_GPU = "" if _gpu_count() else "no NVIDIA GPU here (nvidia-smi -L lists none)"
# Why a backend cannot reach an NVIDIA GPU here: its CUDA build is missing (docs/scaling.md)
NO_CUDA_BUILD = {
    "tensorflow": "" if importlib.util.find_spec("nvidia") else
                  "the gpu extra is not installed (pip install -e '.[gpu]')",
    "jax": "" if _installed("jax-cuda12-plugin") or _installed("jax-cuda13-plugin") else
           "JAX's CUDA plugin is not installed (pip install -U 'jax[cuda13]')",
    "torch": "" if _installed("torch") and not _installed("torch").endswith("+cpu") else
             "PyTorch here is not its CUDA build (pip install torch --index-url "
             "https://download.pytorch.org/whl/cu12x)",
}


def on_the_gpu(backend: str):
    """Skip where there is no GPU, or no CUDA build of the backend, saying which."""
    why = NO_GPU or NO_CUDA_BUILD[backend]
    return pytest.mark.skipif(bool(why), reason=why)


pytestmark = [pytest.mark.slow, pytest.mark.gpu]


@pytest.mark.parametrize("backend", [pytest.param(backend, marks=on_the_gpu(backend))
                                     for backend in NO_CUDA_BUILD])
def test_each_backend_sees_the_gpu_and_counts_its_memory(backend, tmp_path):
    probe = probe_backend(tmp_path, backend)
    tags = probe["tags"]
    assert tags["backend"] == backend and tags["device.kind"] == "GPU" and tags["device.name"]
    assert int(tags["device.count"]) >= 1 and tags["gpu.driver_version"]
    assert re.fullmatch(r"\d+\.\d+", tags["gpu.compute_capability"])
    if backend != "torch":  # PyTorch's caching allocator has no such setting
        assert tags["gpu.memory_growth"] == "true"
    assert probe["on_gpu"] is True and probe["gpu_peak_mb"] > 0
    assert probe["cudnn_used"] is (True if backend == "tensorflow" else None)
    assert probe["tensorflow_imported"] is (backend == "tensorflow")


@on_the_gpu("tensorflow")
def test_a_job_on_the_gpu_says_which_gpu_and_uses_cudnn(run_cli, client):
    result = run_cli("model=lstm", "return_sequences=true")
    assert result.returncode == 0, result.stderr[-3000:]
    [run] = runs_of(client)
    tags = run.data.tags
    assert tags["device.kind"] == "GPU" and tags["device.name"]
    assert re.fullmatch(r"\d+\.\d+", tags["gpu.compute_capability"])
    assert tags["gpu.memory_growth"] == "true"
    assert tags["cudnn.used"] == "true" and tags["shape.match"] == "true"
    assert run.data.metrics["oracle.max_abs_err"] < 1e-5


@on_the_gpu("tensorflow")
def test_the_seed_sweep_passes_its_checks_on_the_gpu(run_cli, client):
    result = run_cli("-m", "sweep=seed", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    children = [r for r in runs_of(client) if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 8
    assert {c.data.tags["device.kind"] for c in children} == {"GPU"}
    assert {c.info.status for c in children} == {"FINISHED"}


@on_the_gpu("tensorflow")
def test_speed_figures_on_the_gpu_say_what_ran(run_cli, client):
    """cuDNN as used (not as allowed), the GPU's peak memory, mixed precision that passes."""
    assert run_cli("-m", "model=lstm", "+model.layers.0.use_cudnn=auto,false",
                   "precision=float32,mixed_float16", "data.batch_size=64",
                   "data.timesteps=100").returncode == 0
    children = [r for r in runs_of(client) if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 4 and {c.info.status for c in children} == {"FINISHED"}
    for child in children:
        allowed = child.data.params["model.layers.0.use_cudnn"] == "auto"
        assert child.data.tags["cudnn.used"] == str(allowed).lower()
        assert child.data.metrics["memory.gpu_peak_mb"] > 0
        assert child.data.tags["gpu.driver_version"]
        assert child.data.metrics["oracle.max_abs_err"] <= float(child.data.params["tolerance"])
