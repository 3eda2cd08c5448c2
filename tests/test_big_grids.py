"""A thousand cells: a grid composed once per combination of config-group choices equals
Hydra's own composition cell by cell, is checked as Hydra's would be, and reads well."""

import pickle

from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from helpers import CONF, examples

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
    from hydra_plugins.runner_sweeper.grid_sweeper import _config_digest, _explained

    check = _explained if explain else _config_digest
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
