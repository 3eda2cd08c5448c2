"""The runner as a wheel: built from this tree, installed into a fresh environment, and run
from a directory that is not the checkout, as a user on a GPU box or a Ray worker would.

The fresh environment reuses the dependencies already installed (a `.pth` file naming their
folder) instead of downloading them again; the runner itself comes from the wheel alone."""

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import urllib.request
import zipfile
from pathlib import Path

import pytest

import servers
from helpers import ROOT, runner_env

pytestmark = pytest.mark.slow

STACK = """\
# Input -> GRU(5) -> Dense(2)
input_shape: [12, 3]
layers:
  - _target_: keras.layers.GRU
    units: 5
  - _target_: keras.layers.Dense
    units: 2
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh environment with the runner installed from its wheel; returns its bin folder."""
    base = tmp_path_factory.mktemp("wheel")
    tree = base / "tree"  # building writes build/ and *.egg-info beside the sources: a copy
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "outputs", "multirun", "mlruns", "mlartifacts", "__pycache__",
        "*.egg-info", "build"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(base / "dist"), str(tree)], check=True, capture_output=True)
    [wheel] = (base / "dist").glob("rnn_shapes_runner-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "runner/conf/config.yaml" in names and "runner/conf/model/bilstm.yaml" in names
    assert "runner/conf/hydra/launcher/ray_gpu.yaml" in names
    assert "hydra_plugins/runner_sweeper/grid_sweeper.py" in names
    assert not any(name.startswith(("tests/", "conf/", "benchmarks/")) for name in names)

    env = base / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(env), "platbase": str(env)}))
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"),
                    "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True,
                   capture_output=True)
    return env / "bin"


def _run(bin_dir: Path, cwd: Path, *command: str, timeout: int = 300):
    env = {**runner_env(), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_the_installed_wheel_runs_from_any_directory(installed, tmp_path):
    work = tmp_path / "somewhere"
    work.mkdir()
    python = str(installed / "python")
    where = _run(installed, work, python, "-c", "import runner, runner.conf; "
                 "print(runner.__file__); print(runner.conf.__file__)")
    assert where.returncode == 0, where.stderr
    assert all(not line.startswith(str(ROOT)) for line in where.stdout.splitlines())

    single = _run(installed, work, "runner", "model=bilstm", "return_sequences=true")
    assert single.returncode == 0, single.stderr
    assert single.stdout.splitlines()[0] == "bilstm return_sequences=true -> output (4, 30, 6)"
    assert (work / "outputs" / "mlflow.db").is_file()

    explain = _run(installed, work, "runner", "mode=explain", "model=lambda_lstm")
    assert explain.returncode == 0, explain.stderr
    assert "total params: 5061" in explain.stdout

    mine = tmp_path / "my_models"
    (mine / "model").mkdir(parents=True)
    (mine / "model" / "mine.yaml").write_text(STACK)
    own = _run(installed, work, "runner", f"--config-dir={mine}", "model=mine")
    assert own.returncode == 0, own.stderr
    assert own.stdout.splitlines()[0] == "mine -> output (4, 2)"

    sweep = _run(installed, work, "runner", "-m", "sweep=seed")
    assert sweep.returncode == 0, sweep.stderr
    assert sweep.stdout.count("FINISHED") == 8
    assert "[8/8]" in sweep.stdout

    results = _run(installed, work, python, "-m", "runner.results", "last")
    assert results.returncode == 0, results.stderr
    assert results.stdout.startswith("sweep ") and "(sweep=seed): FINISHED, 8 cells" in results.stdout
    assert results.stdout.count("lambda_lstm") == 2

    port = servers.free_port()
    env = {**runner_env(), "PATH": f"{installed}{os.pathsep}{os.environ['PATH']}"}
    ui = subprocess.Popen([python, "-m", "runner.ui", "--port", str(port)], cwd=work, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                          start_new_session=True)
    try:
        first = ui.stdout.readline()
        assert first.startswith(f"the runs of rnn-shapes: http://127.0.0.1:{port}/#/experiments/")
        servers.wait_for(f"http://127.0.0.1:{port}/health", ui)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
            assert page.status == 200 and b"MLflow" in page.read()
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=30)
