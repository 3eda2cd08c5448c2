"""A colleague's stack file is data: shared files that try to reach past the model are refused in
one line, before anything runs or is written; honest ones keep working (docs/shared-stacks.md).

Each case is typed as a user types it: `python -m runner --config-dir=DIR model=shared`, in a
working directory of its own, with HOME a scratch directory that is listed before and after."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, runner_env, store_of
from runner.stack_files import FileRefused, check_config_files, shared_directories

STACK = """\
input_shape: ["${data.timesteps}", "${data.features}"]
layers:
  - _target_: keras.layers.LSTM
    units: 3
    return_sequences: ${return_sequences}
"""
GLOBAL_STACK = "model:\n" + "".join(f"  {line}\n" for line in STACK.splitlines())
SHARED_KEY = ("Hydra's own key, not a shared file's: only hydra.sweeper.params may come from a "
              "--config-dir; type the rest on the command line")
STORE = ("where runs go is the user's choice (MLFLOW_TRACKING_URI, or tracking.uri on the command "
         "line), not a shared file's")
STACK_DEFAULTS = "a stack file's defaults name only other stacks (model/NAME) and _self_"


def _outside(key: str, package: str) -> str:
    return f"model/shared.yaml: {key}: outside the model ('# @package {package}'); a stack " \
           f"file sets model.* only"


def _global(hydra: str) -> str:
    """A stack file that also sets `hydra:`, its keys at the top of the config."""
    return f"# @package _global_\n{GLOBAL_STACK}hydra:\n{hydra}"


# name: (the shared directory's files, the line the runner prints after "DIR/")
CORPUS = {
    "global_callback_open": (
        {"model/shared.yaml": _global(
            "  callbacks:\n    grab:\n      _target_: builtins.open\n"
            "      file: {home}/victim.txt\n      mode: w\n")},
        _outside("hydra.callbacks.grab", "_global_")),
    "package_hydra_callback_write_text": (
        {"model/shared.yaml": "# @package hydra\ncallbacks:\n  note:\n"
                              "    _target_: pathlib.Path.write_text\n"
                              "    self: {home}/victim.txt\n    data: gone\n"},
        _outside("hydra.callbacks.note", "hydra")),
    "global_callback_file_handler": (
        {"model/shared.yaml": _global(
            "  callbacks:\n    log:\n      _target_: logging.FileHandler\n"
            "      filename: {home}/new.txt\n")},
        _outside("hydra.callbacks.log", "_global_")),
    "global_logging_handler_factory": (
        {"model/shared.yaml": _global(
            "  job_logging:\n    handlers:\n      file:\n        (): logging.FileHandler\n"
            "        filename: {home}/new.txt\n    root:\n      handlers: [file]\n")},
        _outside("hydra.job_logging.handlers.file", "_global_")),
    "global_hydra_logging_handler_factory": (
        {"model/shared.yaml": _global(
            "  hydra_logging:\n    handlers:\n      file:\n        (): logging.FileHandler\n"
            "        filename: {home}/victim.txt\n")},
        _outside("hydra.hydra_logging.handlers.file", "_global_")),
    "env_set_tracking_uri": (
        {"model/shared.yaml": _global(
            "  job:\n    env_set:\n      MLFLOW_TRACKING_URI: http://collector.example:5000\n")},
        _outside("hydra.job.env_set.MLFLOW_TRACKING_URI", "_global_")),
    "env_set_pythonpath": (
        {"model/shared.yaml": _global("  job:\n    env_set:\n      PYTHONPATH: {home}\n")},
        _outside("hydra.job.env_set.PYTHONPATH", "_global_")),
    "env_set_ld_preload": (
        {"model/shared.yaml": _global(
            "  job:\n    env_set:\n      LD_PRELOAD: {home}/hook.so\n")},
        _outside("hydra.job.env_set.LD_PRELOAD", "_global_")),
    "run_dir_in_home": (
        {"model/shared.yaml": _global("  run:\n    dir: {home}/outputs\n")},
        _outside("hydra.run.dir", "_global_")),
    "sweep_dir_in_home": (
        {"model/shared.yaml": _global("  sweep:\n    dir: {home}/outputs\n")},
        _outside("hydra.sweep.dir", "_global_")),
    "global_tracking_uri": (
        {"model/shared.yaml": "# @package _global_\ntracking:\n"
                              "  uri: http://collector.example:5000\n" + GLOBAL_STACK},
        _outside("tracking.uri", "_global_")),
    "package_tracking": (
        {"model/shared.yaml": "# @package tracking\nuri: http://collector.example:5000\n"},
        _outside("tracking.uri", "tracking")),
    "package_data": (
        {"model/shared.yaml": "# @package data\nbatch_size: 100000\n"},
        _outside("data.batch_size", "data")),
    "package_line_after_blank_lines": (
        {"model/shared.yaml": "\n\n#@package _global_\nverbose: true\n" + GLOBAL_STACK},
        _outside("verbose", "_global_")),
    "package_inside_the_model": (
        {"model/shared.yaml": "# @package model.inner\n" + STACK},
        "model/shared.yaml: # @package model.inner: a stack file keeps its own package (model); "
        "remove the line"),
    "defaults_override_launcher": (
        {"model/shared.yaml": "defaults:\n  - override /hydra/launcher: basic\n  - _self_\n"
                              + STACK},
        f"model/shared.yaml: defaults: 'override /hydra/launcher: basic' reaches "
        f"hydra/launcher; {STACK_DEFAULTS}"),
    "defaults_reach_hydra_logging": (
        {"model/shared.yaml": "defaults:\n  - /hydra/job_logging: disabled\n" + STACK},
        f"model/shared.yaml: defaults: '/hydra/job_logging: disabled' reaches "
        f"hydra/job_logging; {STACK_DEFAULTS}"),
    "defaults_reach_another_group": (
        {"model/shared.yaml": "defaults:\n  - /tracking: default\n  - _self_\n" + STACK},
        f"model/shared.yaml: defaults: '/tracking: default' reaches tracking; "
        f"{STACK_DEFAULTS}"),
    "defaults_move_a_stack_to_the_top": (
        {"model/shared.yaml": "defaults:\n  - base@_global_\n  - _self_\n",
         "model/base.yaml": STACK},
        f"model/shared.yaml: defaults: 'base@_global_' reaches model/base@_global_; {STACK_DEFAULTS}"),
    "every_trick_at_once": (
        {"model/shared.yaml": "# @package _global_\ndefaults:\n"
                              "  - override /hydra/launcher: basic\n  - _self_\n"
                              + _global("  job:\n    env_set:\n      LD_PRELOAD: x.so\n"
                                        "  callbacks:\n    grab:\n"
                                        "      _target_: builtins.open\n"
                                        "      file: {home}/victim.txt\n      mode: w\n"
                                        ).removeprefix("# @package _global_\n")},
        _outside("hydra.job.env_set.LD_PRELOAD", "_global_")),
    # Beside an honest stack file: a file that shadows one of Hydra's, or the runner's
    "shadows_hydras_job_logging": (
        {"model/shared.yaml": STACK,
         "hydra/job_logging/default.yaml": "handlers:\n  file:\n    (): logging.FileHandler\n"
                                           "    filename: {home}/new.txt\n"},
        f"hydra/job_logging/default.yaml: hydra.job_logging.handlers.file: {SHARED_KEY}"),
    "shadows_the_runners_config": (
        {"model/shared.yaml": STACK,
         "config.yaml": "hydra:\n  callbacks:\n    grab:\n      _target_: builtins.open\n"
                        "      file: {home}/victim.txt\n      mode: w\n"},
        f"config.yaml: hydra.callbacks.grab: {SHARED_KEY}"),
    "shadows_the_runners_tracking": (
        {"model/shared.yaml": STACK,
         "tracking/default.yaml": "uri: http://collector.example:5000\nexperiment: rnn-shapes\n"},
        f"tracking/default.yaml: tracking.uri: {STORE}"),
    "a_sweep_preset_sweeping_the_environment": (
        {"model/shared.yaml": STACK,
         "sweep/default.yaml": "# @package _global_\nhydra:\n  sweeper:\n    params:\n"
                               "      hydra.job.env_set.LD_PRELOAD: x.so\n"},
        f"sweep/default.yaml: hydra.sweeper.params.hydra.job.env_set.LD_PRELOAD: {SHARED_KEY}"),
    "a_data_file_choosing_the_launcher": (
        {"model/shared.yaml": STACK,
         "data/default.yaml": "defaults:\n  - override /hydra/launcher: basic\nbatch_size: 4\n"},
        "data/default.yaml: defaults: 'override /hydra/launcher: basic' reaches Hydra's own "
        "config (hydra/launcher); choose it on the command line: hydra/launcher=NAME"),
}


def _listing(*roots: Path) -> dict:
    """Every file and directory below `roots`: its kind, size, modification time and bytes."""
    listing = {}
    for root in roots:
        for path in [root, *root.rglob("*")]:
            stat = path.lstat()
            listing[str(path)] = (path.is_dir(), stat.st_size, stat.st_mtime_ns,
                                  None if path.is_dir() else path.read_bytes())
    return listing


def _user(root: Path):
    """A scratch HOME with a file worth keeping, the shared directory in it, and a working
    directory: (home, shared directory, working directory)."""
    home, work = root / "home", root / "work"
    shared = home / "from_a_colleague"
    shared.mkdir(parents=True)
    work.mkdir()
    (home / "victim.txt").write_text("the user's own notes\n")
    return home, shared, work


@pytest.fixture
def user(tmp_path):
    return _user(tmp_path)


def _share(shared: Path, files: dict, home: Path) -> None:
    for relative, text in files.items():
        (shared / relative).parent.mkdir(parents=True, exist_ok=True)
        (shared / relative).write_text(text.replace("{home}", str(home)))


def _start(work: Path, home: Path, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "runner", *args], cwd=work,
                            env=runner_env(HOME=str(home)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _runner(work: Path, home: Path, *args) -> subprocess.CompletedProcess:
    process = _start(work, home, *args)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def refused(tmp_path_factory):
    """Every case of the corpus typed at once, each by a user of its own: case -> (shared
    directory, the process's result, the listing before, the listing after). Together because
    each is a second of Python's start-up, most of it waiting."""
    started = {}
    for case, (files, _) in CORPUS.items():
        home, shared, work = _user(tmp_path_factory.mktemp(case))
        _share(shared, files, home)
        before = _listing(home, work)
        started[case] = (home, shared, work, before,
                         _start(work, home, f"--config-dir={shared}", "model=shared"))
    results = {}
    for case, (home, shared, work, before, process) in started.items():
        stdout, stderr = process.communicate(timeout=120)
        results[case] = (shared, subprocess.CompletedProcess(process.args, process.returncode,
                                                             stdout, stderr),
                         before, _listing(home, work))
    return results


@pytest.mark.slow  # a subprocess a case: the full suite
@pytest.mark.parametrize("case", list(CORPUS))
def test_a_hostile_shared_file_is_refused_before_anything_runs(refused, case):
    shared, result, before, after = refused[case]
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert result.stderr == f"{shared}/{CORPUS[case][1]}\n"
    assert after == before


@pytest.mark.slow  # a subprocess a case: the full suite
@pytest.mark.parametrize("flags", [["-cd", "~/from_a_colleague"], ["--config-dir", "{shared}"],
                                   ["--config-dir=~/from_a_colleague", "-m"]])
def test_every_way_of_typing_the_directory_and_a_grid(user, flags):
    home, shared, work = user
    files, line = CORPUS["global_callback_open"]
    _share(shared, files, home)
    before = _listing(home, work)
    typed = [flag.replace("{shared}", str(shared)) for flag in flags]
    result = _runner(work, home, *typed, "model=shared,lstm" if "-m" in typed else "model=shared")
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert result.stderr == f"{shared}/{line}\n"
    assert _listing(home, work) == before


def test_a_model_file_in_the_runners_own_conf_is_held_to_the_same(tmp_path, monkeypatch):
    """The check reads the group through `runner.conf`, wherever it is installed."""
    from importlib import resources

    conf = tmp_path / "conf"
    (conf / "model").mkdir(parents=True)
    (conf / "model" / "lstm.yaml").write_text("# @package _global_\nseed: 1\n")
    monkeypatch.setattr(resources, "files", lambda package: conf)
    with pytest.raises(FileRefused) as refused:
        check_config_files(["runner"])
    assert str(refused.value) == (f"{conf}/model/lstm.yaml: seed: outside the model "
                                  f"('# @package _global_'); a stack file sets model.* only")


def test_the_runners_own_files_and_the_template_pass(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "my_stack.yaml").write_text((ROOT / "docs" / "my_stack.yaml").read_text())
    check_config_files(["runner", f"--config-dir={tmp_path}", "model=my_stack"])


def test_honest_shared_files_pass(tmp_path):
    """What a stack file and a shared directory are documented to hold."""
    files = {
        "model/shared.yaml": "# Input(T, D) -> LSTM(3)\n# @package _group_\n" + STACK,
        "model/wider.yaml": "defaults:\n  - shared\n  - _self_\nunits: 8\n",
        "model/deep/two.yaml": "# @package model.deep\n" + STACK,
        "data/long.yaml": "batch_size: 2\ntimesteps: 100\n",
        "sweep/mine.yaml": "# @package _global_\nhydra:\n  sweeper:\n    params:\n"
                           "      model: shared,lstm\n      +model.layers.0.use_cudnn: auto,false\n",
        "wide.yaml": "defaults:\n  - config\n  - _self_\nreturn_sequences: true\n"
                     "tracking:\n  experiment: mine\n",
    }
    _share(tmp_path, files, tmp_path)
    check_config_files(["runner", "-cd", str(tmp_path), "--config-name=wide", "model=wider"])


def test_the_directories_hydra_would_search(tmp_path):
    first, second, third = (tmp_path / name for name in ("a", "b", "c"))
    for directory in (first, second, third):
        directory.mkdir()
    typed = ["runner", "--config-d", str(first), "-cd=" + str(second), "--cfg", "job",
             f"hydra.searchpath=[file://{third},pkg://runner.conf]", "model=lstm"]
    assert shared_directories(typed) == [first, second, third]
    assert shared_directories(["runner", "model=lstm"]) == []


def test_an_honest_shared_stack_is_explained_as_ever(user):
    home, shared, work = user
    _share(shared, {"model/shared.yaml": STACK}, home)
    before = _listing(home)
    result = _runner(work, home, f"--config-dir={shared}", "model=shared", "mode=explain")
    assert result.returncode == 0, result.stderr
    assert "outputs: output (4, 3)" in result.stdout
    assert _listing(home) == before


@pytest.mark.slow
def test_an_honest_shared_stack_runs_finished_and_recorded_where_the_user_says(user):
    from mlflow import MlflowClient

    home, shared, work = user
    _share(shared, {"model/shared.yaml": STACK}, home)
    result = _runner(work, home, "--config-dir=~/from_a_colleague", "model=shared")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "shared return_sequences=false -> output (4, 3)"
    client = MlflowClient(tracking_uri=store_of(work))
    experiment = client.get_experiment_by_name("rnn-shapes")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["model.name"] == "shared"
    assert lines[1] == (f"recorded: run {run.info.run_id} in outputs/mlflow.db, "
                        f"experiment rnn-shapes")


def test_a_config_path_is_the_users_own_tree_and_only_its_stacks_are_checked(tmp_path):
    own = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", own)
    check_config_files(["runner", f"--config-path={own}", "model=lstm"])
    (own / "model" / "lstm.yaml").write_text("# @package hydra\nrun:\n  dir: /tmp\n")
    with pytest.raises(FileRefused) as refused:
        check_config_files(["runner", f"--config-path={own}", "model=lstm"])
    assert str(refused.value) == (f"{own}/model/lstm.yaml: hydra.run.dir: outside the model "
                                  f"('# @package hydra'); a stack file sets model.* only")
