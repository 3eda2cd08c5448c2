"""A grid's cells: every combination of the overrides (`split_arguments`), each composed and
checked in a child process while this one goes on (`ComposedAside`), and served to the
launcher as composed (`PrecomposedConfigLoader`).

The child is forked before TensorFlow is imported here, so it shares Hydra's state as it is
(config loader, search path, the sweep's config) and imports nothing; it sends back each cell's
composed config and what `check` returned of it, or why it is invalid, and exits."""

import itertools
import os
import pickle
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence

from hydra.core.config_loader import ConfigLoader
from hydra.core.hydra_config import HydraConfig
from hydra.core.object_type import ObjectType
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from runner.errors import ConfigError
from runner.refusals import one_line, unknown_option


def compose_and_check(loader, master_config, cell: Sequence[str], check: Callable) -> tuple:
    """One cell's job config, composed as the launcher would, and what `check` returns of it
    (the job's config as the job sees it, without `hydra`)."""
    config = loader.load_sweep_config(master_config=master_config, sweep_overrides=list(cell))
    refusal = unknown_option(config.hydra.runtime.choices, loader)  # `sweep=sed,seed`
    if refusal is not None:
        raise ConfigError(refusal)
    HydraConfig.instance().set_config(config)  # `${hydra:...}` resolves as in the job
    return config, check(OmegaConf.masked_copy(config, [key for key in config if key != "hydra"]))


def _reason(error: Exception, cell: Sequence[str]) -> str:
    """Why a cell is invalid, in one line: as a single run with its overrides is refused."""
    line = one_line(error, cell, grid=True)
    if line is not None:
        return line
    reasons = [str(error)] + ([str(error.__cause__)] if error.__cause__ else [])
    return " ".join(" ".join(reasons).split())


def _outcomes(loader, master_config, cells: List[tuple], check: Callable) -> list:
    """(cell, config, checked, None) or (cell, None, None, why it is invalid), for every cell."""
    outcomes = []
    for cell in cells:
        try:
            outcomes.append((cell, *compose_and_check(loader, master_config, cell, check), None))
        except Exception as error:  # every composition or validation error, whatever its kind
            outcomes.append((cell, None, None, _reason(error, cell)))
    return outcomes


class ComposedAside:
    """The grid's outcomes, composed in a forked child (or here, where there is no fork)."""

    def __init__(self, loader, master_config, cells: List[tuple], check: Callable) -> None:
        self._outcomes = None
        if not hasattr(os, "fork"):
            self._outcomes = _outcomes(loader, master_config, cells, check)
            return
        sys.stdout.flush()
        sys.stderr.flush()
        reading, writing = os.pipe()
        self._pid = os.fork()
        if self._pid == 0:  # the child: compose, send, and leave without running any exit hook
            code = 0
            try:
                os.nice(10)  # TensorFlow's import in the parent is the longer road: it goes first
                os.close(reading)
                with os.fdopen(writing, "wb") as pipe:
                    pickle.dump(_outcomes(loader, master_config, cells, check), pipe)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(writing)
        self._pipe = os.fdopen(reading, "rb")

    def result(self) -> list:
        """(cell, config, checked, None) or (cell, None, None, reason) for every cell, in grid
        order."""
        if self._outcomes is None:
            try:
                self._outcomes = pickle.load(self._pipe)
            except (EOFError, pickle.UnpicklingError) as error:
                raise RuntimeError("the process composing the grid ended without an answer") \
                    from error
            finally:
                self._pipe.close()
                os.waitpid(self._pid, 0)
        return self._outcomes


class PrecomposedConfigLoader(ConfigLoader):
    """Hydra's config loader as the sweeper hands it to its launcher: a cell composed and
    checked before the sweep began is served as it was (composing it again costs about 75 ms),
    with the sweep's environment; anything else is asked of Hydra's own loader. Pickled to a
    worker process, it is Hydra's loader again."""

    def __init__(self, loader: ConfigLoader) -> None:
        self.loader = loader
        self.composed: dict = {}  # cell (its overrides, a tuple) -> its config, served once
        self.env: dict = {}  # what every job finds in its environment (`hydra.job.env_set`)

    def serve(self, composed: dict, env: dict) -> None:
        self.composed, self.env = dict(composed), dict(env)

    def load_sweep_config(self, master_config: DictConfig,
                          sweep_overrides: List[str]) -> DictConfig:
        config = self.composed.pop(tuple(sweep_overrides), None)
        if config is None:
            return self.loader.load_sweep_config(master_config, sweep_overrides)
        OmegaConf.set_readonly(config.hydra, None)  # as composed: HydraConfig had locked it
        with open_dict(config.hydra):
            config.hydra.overrides.hydra = list(master_config.hydra.overrides.hydra)
            config.hydra.job.env_set.update(self.env)
        OmegaConf.copy_cache(from_config=master_config, to_config=config)  # ${now:} as the sweep's
        return config

    def load_configuration(self, config_name: Optional[str], overrides: List[str],
                           run_mode: RunMode, from_shell: bool = True,
                           validate_sweep_overrides: bool = True) -> DictConfig:
        return self.loader.load_configuration(config_name, overrides, run_mode, from_shell,
                                              validate_sweep_overrides)

    def get_search_path(self):
        return self.loader.get_search_path()

    def get_sources(self):
        return self.loader.get_sources()

    def list_groups(self, parent_name: str) -> List[str]:
        return self.loader.list_groups(parent_name)

    def get_group_options(self, group_name: str,
                          results_filter: Optional[ObjectType] = ObjectType.CONFIG,
                          config_name: Optional[str] = None,
                          overrides: Optional[List[str]] = None) -> List[str]:
        return self.loader.get_group_options(group_name, results_filter, config_name, overrides)

    def compute_defaults_list(self, config_name: Optional[str], overrides: List[str],
                              run_mode: RunMode) -> Any:
        return self.loader.compute_defaults_list(config_name, overrides, run_mode)

    def __reduce__(self):
        return _hydras_loader, (self.loader,)


def _hydras_loader(loader: ConfigLoader) -> ConfigLoader:
    return loader


def split_arguments(overrides: list, max_batch_size: Optional[int]) -> List[List[tuple]]:
    """Every combination of the overrides' values, in the order Hydra's basic sweeper makes
    them (the last key varies fastest), as batches of at most `max_batch_size` cells."""
    values: Dict[str, List[str]] = {}
    for override in overrides:
        key = override.get_key_element()
        if not override.is_sweep_override():
            values[key] = [f"{key}={override.get_value_element_as_str()}"]
        elif override.is_discrete_sweep():
            values[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            raise ConfigError(f"{key.lstrip('+~')}: {override.input_line.split('=', 1)[1]} is "
                              f"not a list of values; a grid takes a,b,c or range(START,STOP)")
    cells = [tuple(cell) for cell in itertools.product(*values.values())]
    size = max_batch_size if max_batch_size and max_batch_size > 0 else max(len(cells), 1)
    return [cells[i:i + size] for i in range(0, len(cells), size)]
