"""A thousand cells: a grid composed once per combination of config-group choices equals
Hydra's own composition cell by cell, is checked as Hydra's would be, and reads well."""

import pickle
import re

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from helpers import CONF, examples, parent_and_children

# What a grid may sweep: config groups, knobs, sizes, additions and deletions, interpolations
# (one reads the overrides Hydra writes for each cell), and values Hydra or the runner refuse
VALUES = {
    "model": ["lstm", "bilstm", "guide_encoder_decoder", "lambda_lstm", "lstmm"],
    "sweep": ["seed", "speed", "sed"],
    "mode": ["explain", "run"],
    "return_sequences": ["true", "false"],
    "return_state": ["true", "false"],
    "merge_mode": ["sum", "concat", "concatenate"],
    "data.timesteps": ["5", "12", "0", "${data.features}"],
    "seed": ["0", "3", "-1"],
    "model.units": ["4", "9"],
    "model.layers.0.units": ["7", "x"],
    "+model.layers.0.unroll": ["true"],
    "model.layers.0.unroll": ["true"],
    "++data.padding": ["0.5", "0.0"],
    "+data.padding": ["0.5"],
    "~data.padding": [""],
    "+data.inputs.inputs.timesteps": ["6"],
    "data.features": ["${seed}", "2"],
    "tracking.experiment": ["${hydra:job.override_dirname}", "grid"],
    "precision": ["mixed_float16", "float64"],
    "return_sequence": ["true"],
}


@st.composite
def grids(draw):
    """A grid as typed after -m: a few keys, each with one value or several."""
    keys = draw(st.lists(st.sampled_from(sorted(VALUES)), min_size=1, max_size=4, unique=True))
    arguments, cells = [], 1
    for key in keys:
        values = draw(st.lists(st.sampled_from(VALUES[key]), min_size=1, max_size=3,
                               unique=True))
        while cells * len(values) > 6:  # a few cells: Hydra composes each one for the test
            values.pop()
        cells *= len(values)
        arguments.append(f"{key}={','.join(values)}" if values != [""] else key)
    return arguments


def _hydras_outcome(loader, master, cell, check):
    """A cell as the sweeper checked it before: composed by Hydra alone, then checked."""
    from hydra_plugins.runner_sweeper.composing import _reason
    from runner.errors import ConfigError
    from runner.refusals import unknown_option

    written = None
    try:
        config = loader.load_sweep_config(master, list(cell))
        written = _written(config)  # before HydraConfig locks its hydra node
        refusal = unknown_option(config.hydra.runtime.choices, loader)
        if refusal is not None:
            raise ConfigError(refusal)
        HydraConfig.instance().set_config(config)
        checked = check(OmegaConf.masked_copy(config, [key for key in config if key != "hydra"]))
        return written, checked, None
    except Exception as error:
        return written, None, _reason(error, cell)


def _written(config) -> str:
    """A whole config as written, `hydra` node and all; the root's typing and flags with it."""
    return "\n".join([OmegaConf.to_yaml(config), repr(OmegaConf.get_type(config)),
                      repr(OmegaConf.is_struct(config)), repr(OmegaConf.is_readonly(config.hydra))])


@settings(max_examples=examples(30))
@given(grids(), st.booleans())
def test_a_grid_composed_from_its_choices_is_hydras_cell_by_cell(arguments, explain):
    from hydra_plugins.runner_sweeper.composing import CellChecker, split_arguments
    from runner.composition import GridComposer
    from hydra_plugins.runner_sweeper.composing import config_digest, explained_cell

    check = explained_cell if explain else config_digest
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        loader = GlobalHydra.instance().config_loader()
        try:
            master = loader.load_configuration("config", arguments, RunMode.MULTIRUN)
        except Exception:  # refused before any sweep, by Hydra itself
            assume(False)
        HydraConfig.instance().set_config(master)
        parsed = OverridesParser.create(config_loader=loader).parse_overrides(arguments)
        [cells] = split_arguments(parsed, None)
        hydras = [_hydras_outcome(loader, master, cell, check) for cell in cells]
        composer = GridComposer(loader, master)
        checker = CellChecker(composer, check)  # its memo spans the grid, as in a sweep
        outcomes = [checker.outcome(cell) for cell in cells]
        worker = pickle.loads(pickle.dumps(composer))  # as a joblib or submitit worker has it
        for cell, (written, checked, refusal), outcome in zip(cells, hydras, outcomes):
            assert outcome[1:3] == (checked, refusal), cell
            event("refused" if refusal else "checked")
            event("composed by Hydra alone" if outcome[3] else "composed from its base")
            if written is None:
                continue
            for composed, _ in (composer.compose(cell), worker.compose(cell)):
                assert _written(composed) == written, cell  # overrides.task and all
                assert list(composed.hydra.overrides.task) == list(cell)


def _rows(count: int) -> list:
    """Summary rows of a sweep of `count` cells over model and seed; job 3 FAILED, job k took
    (k % 7 + 1) / 10 s."""
    models = ["lstm", "gru", "bilstm", "simple_rnn", "lambda_lstm"]
    return [{"job": job, "overrides": f"model={models[job % 5]},seed={job // 5},timing.repeats=0",
             "status": "FAILED" if job == 3 else "FINISHED", "seconds": (job % 7 + 1) / 10,
             "error": "StackError: no" if job == 3 else "", "throughput": ""}
            for job in range(count)]


def test_a_big_sweep_is_summed_up_by_knob_in_a_screen(monkeypatch):
    from runner.report import sweep_summary

    text = sweep_summary(_rows(60))
    assert text.splitlines() == [
        "60 cells, 23.4 s of jobs",
        "knob                 cells  FINISHED  FAILED  median s  fastest s  slowest s",
        "-------------------  -----  --------  ------  --------  ---------  ---------",
        "every cell           60     59        1       0.40      0.10       0.70",
        "model=lstm           12     12        0       0.40      0.10       0.70",
        "model=gru            12     12        0       0.35      0.10       0.70",
        "model=bilstm         12     12        0       0.35      0.10       0.70",
        "model=simple_rnn     12     11        1       0.40      0.10       0.70",
        "model=lambda_lstm    12     12        0       0.40      0.10       0.70",
        "seed=0               5      4         1       0.30      0.10       0.50",
        "seed=1               5      5         0       0.30      0.10       0.70",
        "seed=2               5      5         0       0.50      0.10       0.70",
        "seed=3               5      5         0       0.40      0.20       0.60",
        "seed=4               5      5         0       0.30      0.10       0.70",
        "seed=5               5      5         0       0.50      0.10       0.70",
        "seed: 6 more values",
        "FAILED: model=simple_rnn,seed=0: StackError: no",
        "slowest  0.70 s  model=lstm,seed=11",  # of the 0.7 s cells, the last ones
        "         0.70 s  model=simple_rnn,seed=9",
        "fastest  0.10 s  model=lstm,seed=0",
        "         0.10 s  model=bilstm,seed=1"]
    monkeypatch.setattr("runner.report.summary_text", lambda rows, speed=False: "its table")
    assert sweep_summary(_rows(40)) == "its table"  # 40 cells: a row each, as ever


def test_a_big_sweep_gives_the_runs_table_not_a_comparison_past_what_mlflow_shows():
    from runner.recording.requests import RunRef
    from runner.report import recorded_lines

    parent = RunRef("p" * 32, "1", "/tmp/nowhere")
    uri = "http://127.0.0.1:5000"
    small = recorded_lines(uri, "rnn-shapes", parent, [f"r{n}" for n in range(20)])
    assert [line.split(":")[0] for line in small] == ["recorded", "  runs", "  compare"]
    big = recorded_lines(uri, "rnn-shapes", parent, [f"r{n}" for n in range(41)])
    assert big[1] == (f"  runs:    {uri}/#/experiments/1/runs?workflowType=machine_learning"
                      f"&viewStateShareKey={'p' * 32}")
    assert big[2:] == [f"  table:   python -m runner.results {'p' * 32}"]


class _Terminal:
    """A terminal's stdout: what was written, as written."""

    def __init__(self) -> None:
        self.written = ""

    def write(self, text: str) -> None:
        self.written += text

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


def test_a_big_sweep_on_a_terminal_rewrites_one_live_line(tmp_path, monkeypatch):
    from hydra_plugins.runner_sweeper.tasks import SweepTask
    from runner.recording.requests import JobReport

    terminal = _Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    monkeypatch.setenv("COLUMNS", "72")
    task = SweepTask(lambda cfg: None)
    task.total, task.started, task.counter = 50, 0.0, tmp_path / ".jobs_done"
    monkeypatch.setattr("time.time", lambda: 10.0)
    task._progress(JobReport(0, "model=lstm", True, "model=lstm -> output (4, 3)"))
    task._progress(JobReport(1, "model=gru", False, "model=gru -> FAILED: StackError: no"))
    assert terminal.written == (
        "\r\x1b[K[1/50]   10.0 s, about 490.0 s to go | model=lstm -> output (4, 3)"
        "\r\x1b[Kmodel=gru -> FAILED: StackError: no\n"  # a failed cell's line stays
        "\r\x1b[K[2/50] 1 failed   10.0 s, about 240.0 s to go | model=gru -> FAILED: ...")
    task.total = 40  # not a big sweep: a line per cell, as in a file or a CI log
    task._progress(JobReport(2, "model=gru", True, "model=gru -> output (4, 3)"))
    assert terminal.written.endswith(
        "FAILED: ...[3/40] model=gru -> output (4, 3)   10.0 s, about 123.3 s to go\n")


TINY = ["data.batch_size=2", "timing.repeats=0", "timing.warmup=0", "reference_rows=1"]


@pytest.mark.slow
def test_a_42_cell_sweep_reads_in_a_screen_and_resumes_from_the_same_check(run_cli, client):
    """Not a terminal (a CI log): a line per cell; then the summary by knob, the runs table
    and the command that prints every cell, no comparison of 42 runs. Resumed, every cell's
    check (composed from its base) gives the digest its job recorded: nothing runs."""
    grid = ["model=simple_rnn,gru,lstm", "return_sequences=false,true",
            "data.timesteps=2,3,4,5,6,7,8", *TINY]
    result = run_cli("-m", *grid)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert [line.split("]")[0] for line in lines[:42]] == [f"[{n}/42" for n in range(1, 43)]
    parent, children = parent_and_children(client)
    assert len(children) == 42 and parent.info.status == "FINISHED"
    summary = lines[42:]
    assert re.fullmatch(r"42 cells, \d+\.\d s of jobs", summary[0])
    assert summary[1].split() == ["knob", "cells", "FINISHED", "median", "s", "fastest", "s",
                                  "slowest", "s"]
    knobs = [line.split()[:3] for line in summary[3:16]]
    assert knobs == [
        ["every", "cell", "42"], ["data.timesteps=2", "6", "6"], ["data.timesteps=3", "6", "6"],
        ["data.timesteps=4", "6", "6"], ["data.timesteps=5", "6", "6"],
        ["data.timesteps=6", "6", "6"], ["data.timesteps=7", "6", "6"],
        ["data.timesteps:", "1", "more"], ["model=simple_rnn", "14", "14"],
        ["model=gru", "14", "14"], ["model=lstm", "14", "14"],
        ["return_sequences=false", "21", "21"], ["return_sequences=true", "21", "21"]]
    cell = r"\d+\.\d\d s  data\.timesteps=\d,model=\w+,return_sequences=(true|false)"
    assert [bool(re.fullmatch(word + cell, line)) for word, line in zip(
        ["slowest  ", " " * 9, "fastest  ", " " * 9], summary[16:20])] == [True] * 4
    recorded = summary[20:]
    assert [line.split(":")[0] for line in recorded] == ["recorded", "  runs", "  table",
                                                         "  figure"]
    assert recorded[2] == f"  table:   python -m runner.results {parent.info.run_id}"
    assert len(lines) <= 42 + 30  # the summary and where it is fit a screen

    again = run_cli("-m", *grid, "resume=last")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.splitlines()[0] == (
        f"resume: every cell of sweep {parent.info.run_id} FINISHED with the same config; "
        "nothing to run")
    assert again.stdout.splitlines()[1:] == summary


@pytest.mark.slow
def test_a_thousand_cell_grid_is_explained_whole(run_cli):
    result = run_cli("-m", "model=simple_rnn,lstm,gru,bilstm,lambda_lstm",
                     "return_sequences=false,true", "data.timesteps=range(3,13)",
                     "seed=range(0,10)", "mode=explain")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("total params: ") == 1000
    labels = [line for line in result.stdout.splitlines() if "  [" in line]
    assert labels[0] == ("simple_rnn return_sequences=false  "
                         "[data.timesteps=3,model=simple_rnn,return_sequences=false,seed=0]")
    assert labels[-1] == ("lambda_lstm return_sequences=true  "
                          "[data.timesteps=12,model=lambda_lstm,return_sequences=true,seed=9]")


@pytest.mark.slow
def test_verbose_says_which_cells_hydra_composed_alone_and_why(run_cli):
    """A primary config that extends the search path: the config groups are Hydra's to know,
    so it composes each cell, as it did before; the tables are the same."""
    grid = ["-m", "model=lstm,gru", "return_sequences=false,true", "mode=explain"]
    alone = run_cli(*grid, "hydra.searchpath=[pkg://runner.conf]", "verbose=true")
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert ("grid: 0 of 4 cells composed from their config-group choices' config; 4 by Hydra "
            "alone:\n  model=lstm return_sequences=false mode=explain verbose=true and 3 more: "
            "hydra.searchpath extends "
            "the search path\n") in alone.stderr
    fast = run_cli(*grid, "verbose=true")
    assert "grid:" not in fast.stderr and fast.stdout == alone.stdout
