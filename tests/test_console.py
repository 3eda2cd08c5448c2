"""The quiet console: TensorFlow's start-up noise dropped, its other lines shown as they are
written (the last one before an abort too), its logs back when the user asks, and a GPU that
TensorFlow cannot use failing the run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import cmdline, run_script, runner_env, runs_of

NOISE_LINE = ("I0000 00:00:1795984324.704587   30673 cpu_feature_guard.cc:227] This TensorFlow "
              "binary is optimized to use available CPU instructions in performance-critical "
              "operations.")
REAL_LINE = "E0000 00:00:1795984326.286932   30673 some_op.cc:12] an error that matters"
# TensorFlow's last words before a failed CHECK aborts the process
LAST_WORDS = ("F0000 00:00:1795984327.000001   30673 gpu_device.cc:99] Check failed: "
              "the device is gone")

# A job whose experiment writes TensorFlow's noise and last words to fd 2, then aborts
ABORTING_JOB = f"""
import os, runpy, sys
import runner.experiment as experiment


def run_experiment(spec, artifact_dir):
    os.write(2, {(NOISE_LINE + chr(10) + LAST_WORDS + chr(10)).encode()!r})
    os.abort()


experiment.run_experiment = run_experiment
sys.argv = ["runner", *sys.argv[1:]]
runpy.run_module("runner", run_name="__main__", alter_sys=True)
"""


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


def _without_log_level() -> dict:
    return {k: v for k, v in runner_env().items() if k != "TF_CPP_MIN_LOG_LEVEL"}


def test_a_line_written_just_before_an_abort_reaches_the_terminal(tmp_path):
    """The filter is a process of its own: it writes the line out after the job has died."""
    script = f"""
import os
from runner.console import tensorflow_logs_read

with tensorflow_logs_read(False):
    os.write(2, {(NOISE_LINE + chr(10) + LAST_WORDS + chr(10)).encode()!r})
    os.abort()
"""
    result = run_script(tmp_path, script, env=_without_log_level(), timeout=60)
    assert result.returncode == -signal.SIGABRT
    assert result.stderr == "gpu_device.cc:99] Check failed: the device is gone\n"


def test_a_computation_given_up_on_a_signal_says_nothing_after_the_jobs_last_line(tmp_path):
    """A job stopped by a signal leaves its prediction running in a thread until the process
    exits; what TensorFlow then writes of it (a rendezvous aborted by the exit) comes after
    the job's last line. It is dropped; a fatal line and Python's own lines are not."""
    late = ("W0000 00:00:1796447922.442584    9198 local_rendezvous.cc:412] Local rendezvous "
            "is aborting with status: INVALID_ARGUMENT: Shapes of all inputs must match")
    script = f"""
import os, sys
from runner.console import computation_abandoned, tensorflow_logs_read

try:
    with tensorflow_logs_read(False):
        computation_abandoned()  # as runner.job does when a signal stops the wait
        raise KeyboardInterrupt
except KeyboardInterrupt:
    print("the job's last line", file=sys.stderr, flush=True)
os.write(2, {(late + chr(10) + REAL_LINE + chr(10) + LAST_WORDS + chr(10)).encode()!r})
os.write(2, b"a line of Python's, written to fd 2\\n")
os._exit(3)
"""
    result = run_script(tmp_path, script, env=_without_log_level(), timeout=60)
    assert result.returncode == 3
    assert result.stderr.splitlines() == [
        "the job's last line", "gpu_device.cc:99] Check failed: the device is gone",
        "a line of Python's, written to fd 2"]


def test_the_filter_ends_with_its_job_even_when_the_job_is_killed(tmp_path):
    script = """
import time
from runner.console import stderr_filter, tensorflow_logs_read

with tensorflow_logs_read(False):
    print(stderr_filter().process.pid, flush=True)  # its filter, already started
    time.sleep(120)
"""
    job = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, env=_without_log_level(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        filter_ = Path(f"/proc/{int(job.stdout.readline())}")
        assert _within(10, lambda: cmdline(filter_)).endswith("runner/stderr_filter.py")
        job.kill()
        assert job.wait(timeout=30) == -signal.SIGKILL
        # it ends at the end of its pipe, with nothing left to write
        assert _within(30, lambda: cmdline(filter_) == "")
        assert job.stderr.read() == ""
    finally:
        job.kill()
        job.wait()


def _within(seconds: float, value):
    """`value()` once it is true, or its last value after `seconds`."""
    deadline = time.monotonic() + seconds
    while not (answer := value()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return answer


def test_one_filter_serves_every_block_of_a_process(capfd, monkeypatch):
    from runner.console import stderr_filter, tensorflow_logs_read

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    filters = []
    for line in (REAL_LINE, LAST_WORDS):
        kept = []
        with tensorflow_logs_read(False, kept):
            os.write(2, f"{NOISE_LINE}\n{line}".encode())  # the last without its newline
        filters.append(stderr_filter().process.pid)
        assert kept == [line.split("30673 ")[1]]
    assert filters[0] == filters[1]
    assert capfd.readouterr().err == ("some_op.cc:12] an error that matters\n"
                                      "gpu_device.cc:99] Check failed: the device is gone\n")


@pytest.mark.slow
def test_a_job_that_aborts_mid_experiment_leaves_its_last_words_on_the_terminal(tmp_path):
    """Through the runner's own job path: TensorFlow started quietly, then the experiment
    writes TensorFlow's last words and aborts, as a failed CHECK does."""
    result = run_script(tmp_path, ABORTING_JOB, "model=lstm", env=_without_log_level())
    assert result.returncode == -signal.SIGABRT
    assert result.stdout == ""
    assert result.stderr == "gpu_device.cc:99] Check failed: the device is gone\n"
