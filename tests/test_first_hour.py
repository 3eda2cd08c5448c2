"""What a new user meets in the first hour, typed as they type it: their own stack, knobs a
stack does not take, refusals that leave nothing behind, output piped into `head`."""

import os
import shutil
import signal
import subprocess
import sys

import pytest

from helpers import ROOT, parent_and_children, runner_env, runs_of


@pytest.fixture
def my_models(tmp_path):
    """~/my_models of the README: the commented template as model/my_stack.yaml."""
    directory = tmp_path / "my_models"
    (directory / "model").mkdir(parents=True)
    shutil.copy(ROOT / "docs" / "my_stack.yaml", directory / "model" / "my_stack.yaml")
    return directory


@pytest.mark.slow
def test_a_stack_of_your_own_from_the_template(run_cli, client, my_models):
    shown = run_cli(f"--config-dir={my_models}", "model=my_stack", "mode=explain")
    assert shown.returncode == 0, shown.stderr
    assert "1  LSTM   output (4, 8)      544" in shown.stdout
    assert "total params: 808" in shown.stdout
    result = run_cli(f"--config-dir={my_models}", "model=my_stack", "return_sequences=true",
                     "model.units=4")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "my_stack return_sequences=true -> output (4, 30, 4)"
    [run] = runs_of(client)
    assert run.data.params["model.name"] == "my_stack"  # the file's name
    assert run.data.params["model.layers.1.units"] == "4"  # ${model.units}, set once
    assert run.data.tags["shape.match"] == "true" and run.info.status == "FINISHED"
    assert "my_stack" in run_cli(f"--config-dir={my_models}", "--help").stdout


@pytest.fixture
def home(tmp_path):
    """A user's home directory with the README's ~/my_models in it."""
    directory = tmp_path / "home"
    (directory / "my_models" / "model").mkdir(parents=True)
    shutil.copy(ROOT / "docs" / "my_stack.yaml", directory / "my_models" / "model")
    return directory


def test_the_readmes_config_dir_under_home_as_typed(tmp_path, home):
    """bash leaves `~` after `=` as it is: the runner expands it, as the README's command needs."""
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run([sys.executable, "-m", "runner", "--config-dir=~/my_models",
                             "model=my_stack", "mode=explain"], cwd=work, capture_output=True,
                            text=True, env=runner_env(HOME=str(home)), timeout=120)
    assert result.returncode == 0, result.stderr
    assert "total params: 808" in result.stdout
    missing = subprocess.run([sys.executable, "-m", "runner", "--config-dir=~/my_modles",
                              "model=my_stack"], cwd=work, capture_output=True, text=True,
                             env=runner_env(HOME=str(home)), timeout=120)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr == f"--config-dir: no directory {home}/my_modles; give a directory " \
                             f"that holds model/NAME.yaml\n"
    assert list(work.iterdir()) == []


@pytest.mark.slow
def test_the_readmes_grid_over_a_stack_of_your_own_as_typed(tmp_path, home):
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run([sys.executable, "-m", "runner", "--config-dir=~/my_models", "-m",
                             "model=my_stack,lstm", "return_sequences=false,true"], cwd=work,
                            capture_output=True, text=True, env=runner_env(HOME=str(home)),
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "[4/4]" in result.stdout
    assert "model=my_stack,return_sequences=true -> output (4, 30, 8)" in result.stdout


def test_a_tilde_is_expanded_in_the_config_dir_alone():
    from runner.cli import with_home_expanded

    home = os.path.expanduser("~")
    assert with_home_expanded(["runner", "--config-dir=~/m", "-cd", "~/n", "-cd=~/o", "x=~/p"]) \
        == ["runner", f"--config-dir={home}/m", "-cd", f"{home}/n", f"-cd={home}/o", "x=~/p"]


def test_a_model_file_missing_keys_hears_of_all_of_them_at_once(run_cli, tmp_path, my_models):
    (my_models / "model" / "bare.yaml").write_text("# nothing yet\nunits: 3\n")
    result = run_cli(f"--config-dir={my_models}", "model=bare")
    assert result.returncode == 1
    assert result.stderr == ("model.input_shape, model.layers: no value given (???); set them in "
                             "the model file or on the command line, e.g. "
                             "model.input_shape=...\n")
    # units is asked for only where a layer takes ${model.units}
    template = (my_models / "model" / "my_stack.yaml").read_text()
    (my_models / "model" / "no_units.yaml").write_text(template.replace("units: 8\n", ""))
    result = run_cli(f"--config-dir={my_models}", "model=no_units")
    assert result.stderr.startswith("model.units: no value given (???)")
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_a_knob_the_stack_does_not_take_is_said_and_recorded(run_cli, client):
    result = run_cli("model=lstm", "merge_mode=sum")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        "lstm return_sequences=false -> output (4, 3)  (not taken by this stack: merge_mode=sum)")
    [run] = runs_of(client)
    assert run.data.tags["knobs.unused"] == "merge_mode=sum"
    assert run.data.params["merge_mode"] == "sum"


@pytest.mark.slow
def test_in_a_grid_across_stacks_every_cell_says_which_knobs_it_ignored(run_cli, client):
    """docs/running.md's grid: a knob typed is named where the stack does not take it, even at
    its default value; the stack that takes it says nothing."""
    result = run_cli("-m", "model=lstm,bilstm", "merge_mode=concat,sum")
    assert result.returncode == 0, result.stderr
    progress = sorted(line.split("] ", 1)[1].split("   ")[0]
                      for line in result.stdout.splitlines() if line.startswith("["))
    assert progress == [
        "merge_mode=concat,model=bilstm -> output (4, 6)",
        "merge_mode=concat,model=lstm -> output (4, 3)  (not taken by this stack: "
        "merge_mode=concat)",
        "merge_mode=sum,model=bilstm -> output (4, 3)",
        "merge_mode=sum,model=lstm -> output (4, 3)  (not taken by this stack: merge_mode=sum)"]
    _, children = parent_and_children(client)
    unused = {run.info.run_name: run.data.tags.get("knobs.unused") for run in children}
    assert unused == {"merge_mode=concat,model=lstm": "merge_mode=concat",
                      "merge_mode=sum,model=lstm": "merge_mode=sum",
                      "merge_mode=concat,model=bilstm": None,
                      "merge_mode=sum,model=bilstm": None}


def test_a_refused_command_leaves_no_files(run_cli, tmp_path):
    for command in (["tracking.experiment="], ["data.batch_size=0"], ["seed=abc"]):
        result = run_cli(*command)
        assert result.returncode == 1 and result.stdout == ""
        assert result.stderr.count("\n") == 1
    assert result.stderr == "seed: must be an integer, got 'abc'\n"
    assert list(tmp_path.iterdir()) == []


def test_an_empty_experiment_name_is_refused_up_front(run_cli):
    result = run_cli("tracking.experiment=")
    assert result.stderr == ("tracking.experiment: must be a name, got ''; "
                             "e.g. tracking.experiment=rnn-shapes\n")


@pytest.mark.slow
def test_output_piped_into_head_is_no_error(tmp_path, client):
    command = "python -m runner model=bilstm return_state=true | head -1"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300,
                            env={**__import__("helpers").runner_env(),
                                 "PATH": f"{ROOT / '.venv' / 'bin'}:/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith("bilstm return_sequences=false return_state=true -> output")
    [run] = runs_of(client)
    assert run.info.status == "FINISHED"


@pytest.mark.slow
def test_verbose_brings_the_libraries_logs_back(run_cli):
    quiet = run_cli("-m", "model=gru")
    loud = run_cli("-m", "model=gru", "verbose=true")
    assert quiet.returncode == loud.returncode == 0
    assert quiet.stderr == "" and "[HYDRA] Launching 1 jobs locally" not in quiet.stdout
    assert "[HYDRA] Launching 1 jobs locally" in loud.stdout
    assert len(loud.stdout.splitlines()) > len(quiet.stdout.splitlines())


@pytest.mark.slow
def test_the_ui_command_prints_the_runs_table_then_serves_it(run_cli, tmp_path):
    """What `make ui` runs, in a project directory: before any run it says there is nothing
    yet; after one, the runs table's address, which the MLflow server it starts then serves."""
    import urllib.request

    import servers

    port = servers.free_port()
    command = [sys.executable, "-m", "runner.ui", "--port", str(port)]
    before = subprocess.Popen([*command, "--store", "nowhere.db"], cwd=tmp_path,
                              env=runner_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, start_new_session=True)
    try:
        assert before.stdout.readline() == (f"nowhere.db: no experiment 'rnn-shapes' yet; run "
                                            f"`make run` first, then open http://127.0.0.1:{port}\n")
    finally:
        _stop(before)
    assert run_cli("model=simple_rnn").returncode == 0
    ui = subprocess.Popen(command, cwd=tmp_path, env=runner_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        first = ui.stdout.readline()
        assert first == (f"the runs of rnn-shapes: http://127.0.0.1:{port}/#/experiments/1/runs?"
                         f"workflowType=machine_learning\n")
        servers.wait_for(f"http://127.0.0.1:{port}/health", ui)
        with urllib.request.urlopen(first.split(": ", 1)[1].strip(), timeout=10) as page:
            assert page.status == 200 and b"MLflow" in page.read()
    finally:
        _stop(ui)


def _stop(server: subprocess.Popen) -> None:
    """The server and every process it started (uvicorn's workers, MLflow's job consumers)."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    server.wait(timeout=30)

