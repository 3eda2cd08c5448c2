"""The quiet console: TensorFlow's start-up noise dropped, its other lines kept, its logs back
when the user asks, and a GPU that TensorFlow cannot use failing the run."""

import os

import pytest

from helpers import runs_of

NOISE_LINE = ("I0000 00:00:1795984324.704587   30673 cpu_feature_guard.cc:227] This TensorFlow "
              "binary is optimized to use available CPU instructions in performance-critical "
              "operations.")
REAL_LINE = "E0000 00:00:1795984326.286932   30673 some_op.cc:12] an error that matters"


def test_the_noise_is_dropped_and_every_other_line_kept_as_written(capfd, monkeypatch):
    from runner.console import tensorflow_logs_read

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    kept = []
    with tensorflow_logs_read(False, kept):
        os.write(2, f"{NOISE_LINE}\n{REAL_LINE}\n".encode())
    assert capfd.readouterr().err == "some_op.cc:12] an error that matters\n"
    assert kept == ["some_op.cc:12] an error that matters"]


@pytest.mark.parametrize("verbose,level", [(True, None), (False, "0")])
def test_verbose_or_the_users_log_level_lets_every_line_through(capfd, monkeypatch, verbose,
                                                                level):
    from runner.console import tensorflow_logs_read

    if level is None:
        monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    else:
        monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", level)
    with tensorflow_logs_read(verbose):
        os.write(2, f"{NOISE_LINE}\n".encode())
    assert capfd.readouterr().err == f"{NOISE_LINE}\n"


@pytest.fixture
def machine_with_a_gpu(tmp_path):
    """This machine as TensorFlow meets it on a GPU box whose CUDA libraries are missing:
    `nvidia-smi -L` lists a GPU, TensorFlow finds none."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-00000000)'\n")
    smi.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.slow
def test_a_gpu_tensorflow_cannot_use_fails_the_run_with_the_reason(run_cli, client,
                                                                   machine_with_a_gpu):
    result = run_cli("model=lstm", env=machine_with_a_gpu)
    assert result.returncode == 1
    line = result.stdout.splitlines()[0]
    assert line.startswith("lstm return_sequences=false -> FAILED: DeviceError: device: this "
                           "machine has an NVIDIA GPU but TensorFlow found none (")
    assert line.endswith("install the gpu extra (pip install -e '.[gpu]'), or set "
                         "CUDA_VISIBLE_DEVICES= to run on the CPU")
    [run] = runs_of(client)
    assert run.info.status == "FAILED"
    assert run.data.tags["error"].startswith("DeviceError: device: this machine has an NVIDIA GPU")


@pytest.mark.slow
def test_a_gpu_hidden_on_purpose_runs_on_the_cpu_quietly(run_cli, client, machine_with_a_gpu):
    result = run_cli("model=lstm", env={**machine_with_a_gpu, "CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "lstm return_sequences=false -> output (4, 3)"
    assert result.stderr == ""
    [run] = runs_of(client)
    assert (run.info.status, run.data.tags["device.kind"]) == ("FINISHED", "CPU")


@pytest.mark.slow
def test_tensorflows_start_up_lines_come_back_when_the_user_sets_its_log_level(run_cli):
    quiet, loud = run_cli("mode=run"), run_cli("mode=run", env={"TF_CPP_MIN_LOG_LEVEL": "0"})
    assert quiet.returncode == loud.returncode == 0
    assert quiet.stderr == ""
    assert "oneDNN custom operations are on" in loud.stderr
