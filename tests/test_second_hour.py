"""The second hour with one's own stacks: every refusal one short line that says what to do, and
a stack file given by its path."""

import pytest

pytestmark = pytest.mark.slow

BROKEN = "input_shape: [30, 1]\nlayers:\n  - _target_: keras.layers.LSTM\n    units: [3\n"
GOOD = "# Input -> GRU(4)\ninput_shape: [30, 1]\nlayers:\n  - _target_: keras.layers.GRU\n" \
       "    units: 4\n"


@pytest.fixture
def my_models(tmp_path):
    folder = tmp_path / "my_models" / "model"
    folder.mkdir(parents=True)
    (folder / "broken.yaml").write_text(BROKEN)
    (folder / "good.yaml").write_text(GOOD)
    return folder


def test_a_yaml_error_in_a_stack_file_is_file_line_column(run_cli, my_models, tmp_path):
    where = (f"{my_models}/broken.yaml:5:1: while parsing a flow sequence; expected ',' or ']', "
             f"but got '<stream end>'")
    single = run_cli("--config-dir=my_models", "model=broken")
    assert (single.returncode, single.stdout, single.stderr) == (1, "", where + "\n")
    explain = run_cli("--config-dir=my_models", "mode=explain", "model=broken")
    assert (explain.returncode, explain.stderr) == (1, where + "\n")
    grid = run_cli("-m", "--config-dir=my_models", "model=broken,good")
    assert (grid.returncode, grid.stdout) == (1, "")
    assert grid.stderr.splitlines() == ["1 of 2 cells are invalid; no job was started:",
                                        f"  model=broken: {where}"]
    assert not (tmp_path / "outputs").exists()


def test_a_stack_file_given_by_its_path(run_cli, my_models, tmp_path):
    ran = run_cli("mode=explain", f"model={my_models}/good.yaml")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines()[0] == "good  [model=good]"
    assert "0  GRU    output (4, 4)     84" in ran.stdout
    elsewhere = tmp_path / "good.yaml"
    elsewhere.write_text(GOOD)
    refused = run_cli("mode=explain", "model=good.yaml")
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr == ("model: a stack is named, not a path: put the file at "
                              "DIR/model/good.yaml and run --config-dir=DIR model=good\n")
    missing = run_cli("model=nowhere.yaml")
    assert missing.stderr == ("model: no file nowhere.yaml; a stack is named by its file's "
                              "name: --config-dir=DIR model=NAME runs DIR/model/NAME.yaml\n")
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("target, closest", [
    ("keras.layers.Conv2D", "keras.layers.Conv1D"), ("keras.layers.LSTMM", "keras.layers.LSTM"),
    ("builtins.open", None)])
def test_an_allowlist_refusal_is_short_and_names_the_closest(run_cli, target, closest):
    result = run_cli("mode=explain", f"model.layers.0._target_={target}")
    assert result.returncode == 1 and result.stdout == ""
    line = result.stderr.rstrip("\n")
    assert "\n" not in line and len(line) < 200
    assert line.startswith(f"model.layers.0._target_: {target!r} is not allowed (closest: ")
    assert line.endswith("); --help lists all")
    if closest:
        assert line.split("(closest: ")[1].startswith(closest)


def test_help_lists_every_class_a_stack_may_name(run_cli):
    from runner.vocabulary import ALLOWED_TARGETS

    text = run_cli("--help").stdout
    listed = text.split("What a stack may name (_target_), and nothing else:\n")[1]
    listed = listed.split("\n\n")[0]
    sections = dict(part.split(": ", 1) for part in listed.replace("\n    ", " ").split("\n"))
    for target in ALLOWED_TARGETS:
        module, name = target.rsplit(".", 1)
        assert name in sections[f"  {module}"].split(", "), target
