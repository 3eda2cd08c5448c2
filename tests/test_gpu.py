"""On a GPU box (the gpu extra installed): jobs run on the GPU, with memory growth, cuDNN where
the config allows it, and the same checks against the oracle and the NumPy reference."""

import importlib.util
import re
import shutil
import subprocess

import pytest

from helpers import runs_of


def _gpu_count() -> int:
    if shutil.which("nvidia-smi") is None:
        return 0
    listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return sum(line.startswith("GPU ") for line in listing.stdout.splitlines())


pytestmark = [
    pytest.mark.slow,
    pytest.mark.gpu,
    pytest.mark.skipif(_gpu_count() == 0, reason="no NVIDIA GPU here (nvidia-smi -L lists none)"),
    pytest.mark.skipif(importlib.util.find_spec("nvidia") is None,
                       reason="the gpu extra is not installed (pip install -e '.[gpu]')"),
]


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


def test_the_seed_sweep_passes_its_checks_on_the_gpu(run_cli, client):
    result = run_cli("-m", "sweep=seed", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    children = [r for r in runs_of(client) if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 8
    assert {c.data.tags["device.kind"] for c in children} == {"GPU"}
    assert {c.info.status for c in children} == {"FINISHED"}


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
