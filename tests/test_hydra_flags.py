"""Hydra's own flags behave as Hydra documents them, typed as a user types them; what Hydra
refuses among them is the runner's one line. None of them starts TensorFlow or a store."""

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import runner_env

pytestmark = pytest.mark.slow

RUNNER = str(Path(sys.executable).parent / "runner")


def _runner(tmp_path, *args, env=None):
    return subprocess.run([sys.executable, "-m", "runner", *args], cwd=tmp_path,
                          env=runner_env(**(env or {})), capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("info, heading", [
    (None, "Installed Hydra Plugins"), ("all", "Installed Hydra Plugins"),
    ("config", "Config search path"), ("defaults", "Defaults List"),
    ("defaults-tree", "Defaults Tree"), ("plugins", "Installed Hydra Plugins"),
    ("searchpath", "Config search path")])
def test_info_in_all_its_forms(tmp_path, info, heading):
    args = ["--info"] if info is None else ["--info", info, "model=gru"]  # a bare --info: no more
    result = _runner(tmp_path, *args)
    assert (result.returncode, result.stderr) == (0, "")
    assert heading in result.stdout
    if info in ("searchpath", "config"):
        assert "| main     | pkg://runner.conf |" in result.stdout
    if info == "defaults":
        assert "model/gru" in result.stdout
    assert not (tmp_path / "outputs").exists()


def test_info_with_a_bad_override_is_one_line(tmp_path):
    result = _runner(tmp_path, "--info", "config", "model=lstmm")
    assert result.returncode == 1
    assert result.stderr.startswith("model: no stack named 'lstmm' (did you mean lstm?); "
                                    "available: bilstm, gru, ")
    assert len(result.stderr.splitlines()) == 1


def test_cfg_resolve_and_package(tmp_path):
    job = _runner(tmp_path, "--cfg", "job", "model=gru")
    assert job.returncode == 0 and "tolerance: ${tolerances.${precision}}" in job.stdout
    assert "\nhydra:" not in job.stdout
    resolved = _runner(tmp_path, "--cfg", "job", "--resolve", "model=gru")
    assert "tolerance: 1.0e-05" in resolved.stdout
    model = _runner(tmp_path, "--cfg", "job", "--package", "model", "model=gru")
    assert model.stdout.startswith("# @package model\nname: gru\nunits: 3\n")
    hydra = _runner(tmp_path, "--cfg", "hydra")
    assert hydra.stdout.startswith("hydra:\n  run:\n") and "hydra/sweeper: grid" in hydra.stdout
    both = _runner(tmp_path, "--cfg", "all", "-p", "hydra.sweeper._target_")
    assert both.stdout == "hydra_plugins.runner_sweeper.grid_sweeper.GridSweeper\n"
    misused = _runner(tmp_path, "--resolve")
    assert (misused.returncode, misused.stderr) == (
        1, "error: The --resolve flag can only be used in conjunction with --cfg or --help\n")
    assert not (tmp_path / "outputs").exists()


def test_shell_completion_installs_and_answers(tmp_path):
    install = subprocess.run([RUNNER, "-sc", "install=bash"], cwd=tmp_path, env=runner_env(),
                             capture_output=True, text=True, timeout=120)
    assert "complete -o nospace -o default -F hydra_bash_completion runner" in install.stdout
    query = subprocess.run([RUNNER, "-sc", "query=bash"], cwd=tmp_path,
                           env=runner_env(COMP_LINE="runner model=bi"), capture_output=True,
                           text=True, timeout=120)
    assert query.stdout.split() == ["model=bilstm"]


def test_hydra_help_and_the_runners_help(tmp_path):
    hydra = _runner(tmp_path, "--hydra-help")
    assert hydra.returncode == 0 and hydra.stdout.startswith("Hydra (1.3")
    assert "--config-dir,-cd : Adds an additional config dir to the config search path" \
        in hydra.stdout


def test_config_dir_and_config_name(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "wide.yaml").write_text("defaults:\n  - config\n  - _self_\n"
                                    "return_sequences: true\nmodel:\n  units: 5\n")
    own = _runner(tmp_path, "--config-dir=mine", "--config-name=wide", "mode=explain")
    assert own.returncode == 0, own.stderr
    assert "0  LSTM   output (4, 30, 5)  140" in own.stdout
    missing = _runner(tmp_path, "--config-name=nope")
    assert (missing.returncode, missing.stderr) == (
        1, "--config-name: no config named 'nope' on the search path; the runner's is config, "
           "a config of yours is DIR/NAME.yaml with --config-dir=DIR\n")
    nowhere = _runner(tmp_path, "--config-dir=nowhere", "mode=explain")
    assert nowhere.stderr == (f"--config-dir: no directory {tmp_path}/nowhere; give a directory "
                              f"that holds model/NAME.yaml\n")


def test_multirun_and_its_misuse(tmp_path):
    grid = _runner(tmp_path, "-m", "mode=explain", "model=gru,lstm")
    assert grid.returncode == 0, grid.stderr
    assert grid.stdout.count("total params:") == 2
    both = _runner(tmp_path, "-m", "--cfg", "job")
    assert (both.returncode, both.stderr) == (
        1, "error: Only one of --run, --multirun, --cfg, --info and --shell_completion can be "
           "specified\n")
    interval = _runner(tmp_path, "-m", "mode=explain", "seed=interval(0,1)")
    assert (interval.returncode, interval.stderr) == (
        1, "seed: interval(0,1) is not a list of values; a grid takes a,b,c or "
           "range(START,STOP)\n")
