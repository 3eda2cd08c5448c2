"""A grid's cells composed as Hydra composes them, at a fraction of the cost: Hydra composes
once per combination of config-group choices (`model=...`, `sweep=...`); the rest of a cell's
overrides are applied to that config as Hydra applies them (`GridComposer`). A cell this
cannot compose exactly is composed by Hydra alone, and the sweeper says which and why with
`verbose=true`. `PrecomposedConfigLoader` serves the cells to a launcher, here or in a worker.

Here, not under hydra_plugins/: Hydra's plugin scan runs those modules a second time, and a
class defined there twice cannot be pickled to a worker."""

import pickle
import re
from typing import Any, Dict, List, Optional, Sequence

from hydra.core.config_loader import ConfigLoader
from hydra.core.object_type import ObjectType
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write


class ComposedAlone(Exception):
    """Why a cell cannot be composed from its config-group choices' config: Hydra composes it
    alone, as it composes any config."""


class GridComposer:
    """Each cell's config exactly as `loader.load_sweep_config(master_config, cell)` composes
    it, at a fraction of its cost: Hydra composes the config of each combination of config-group
    choices once (its `base`); a cell's other overrides are applied to a copy of it in the
    order Hydra applies them (plain values, `+`, `++`, `~`; interpolations resolve later, as
    ever), and the job's record of its overrides (`hydra.overrides.task`,
    `hydra.job.override_dirname`) is written as Hydra writes it. Whatever this does not
    recognise, or that fails, is composed by Hydra alone (`compose` says why), so that every
    refusal is Hydra's own. Pickled to a worker, it takes the bases with it."""

    def __init__(self, loader: ConfigLoader, master_config: DictConfig) -> None:
        self.loader = loader
        self.master = master_config
        self.bases: Dict[tuple, Any] = {}  # group overrides -> a base pickled, or why not
        self._parsed: Dict[str, Any] = {}  # an override as typed -> Hydra's Override of it
        self._groups: Dict[str, bool] = {}  # a key -> whether it names a config group
        self._jobs: Dict[tuple, bytes] = {}  # group overrides -> the base without `hydra`
        self._parser = OverridesParser.create()
        # The config groups are those of the loader's search path, unless the primary config
        # extends it (`hydra.searchpath`): then Hydra alone knows them
        searchpath = OmegaConf.select(master_config, "hydra.searchpath")
        self.alone = "hydra.searchpath extends the search path" if searchpath else None

    def compose(self, cell: Sequence[str]) -> tuple:
        """(the cell's config, None), or (Hydra's composition of it, why Hydra composed it);
        Hydra's exception when Hydra refuses the cell."""
        try:
            return self._compose(cell), None
        except ComposedAlone as why:
            return self.loader.load_sweep_config(self.master, list(cell)), str(why)
        except Exception as error:  # noqa: BLE001 - Hydra, composing the cell alone, says why
            config = self.loader.load_sweep_config(self.master, list(cell))
            return config, f"{type(error).__name__}: {error}"

    def _compose(self, cell: Sequence[str]) -> DictConfig:
        if self.alone:
            raise ComposedAlone(self.alone)
        overrides = [self._parse(override) for override in cell]
        groups = tuple(o.input_line for o in overrides if self._chooses(o))
        config = pickle.loads(self.base(groups))
        for override in overrides:
            if override.input_line not in groups:
                _apply(override, config)
        task, dirname = self.written_for(cell, config.hydra)
        with open_dict(config.hydra), read_write(config.hydra):
            config.hydra.overrides.task, config.hydra.job.override_dirname = task, dirname
        OmegaConf.copy_cache(from_config=self.master, to_config=config)
        return config

    def compose_job(self, cell: Sequence[str]) -> DictConfig:
        """The cell's config as its job sees it, without `hydra`: as `compose` composes it,
        from its base without its `hydra` node. Raises where `compose` would ask Hydra."""
        if self.alone:
            raise ComposedAlone(self.alone)
        overrides = [self._parse(override) for override in cell]
        groups = tuple(o.input_line for o in overrides if self._chooses(o))
        job = self._jobs.get(groups)
        if job is None:
            config = pickle.loads(self.base(groups))
            with open_dict(config):
                del config["hydra"]
            job = self._jobs[groups] = pickle.dumps(config)
        config = pickle.loads(job)
        for override in overrides:
            if override.input_line not in groups:
                _apply(override, config)
        OmegaConf.copy_cache(from_config=self.master, to_config=config)
        return config

    def written_for(self, cell: Sequence[str], hydra: DictConfig) -> tuple:
        """(`hydra.overrides.task`, `hydra.job.override_dirname`) as Hydra writes them for
        the cell, by the settings of its `hydra` node."""
        settings = hydra.job.config.override_dirname
        return list(cell), overrides_dirname([self._parse(override) for override in cell],
                                             settings.exclude_keys, settings.item_sep,
                                             settings.kv_sep)

    def split(self, cell: Sequence[str]) -> Optional[tuple]:
        """(the cell's config-group overrides: the key of its base; the keys its other
        overrides set), or None where Hydra composes it alone."""
        if self.alone:
            return None
        try:
            overrides = [self._parse(override) for override in cell]
            return (tuple(o.input_line for o in overrides if self._chooses(o)),
                    tuple(o.key_or_group for o in overrides if not self._chooses(o)))
        except ComposedAlone:
            return None

    def _parse(self, text: str):
        override = self._parsed.get(text)
        if override is None:
            try:
                [override] = self._parser.parse_overrides([text])
            except Exception as error:  # noqa: BLE001 - Hydra's parser says it again
                raise ComposedAlone(f"{text}: {error}") from None
            if override.is_sweep_override() or override.is_hydra_override():
                raise ComposedAlone(f"{text}: a sweep or Hydra's own setting")
            self._parsed[text] = override
        return override

    def _chooses(self, override) -> bool:
        """Whether Hydra takes this override as a config-group choice (its defaults list),
        not as a value of the config: a group's name, unless its value is a dict."""
        if override.package is not None:
            return True
        key = override.key_or_group
        if key not in self._groups:
            self._groups[key] = any(source.is_group(key) for source in self.loader.get_sources())
        return self._groups[key] and not isinstance(override.value(), dict)

    def base(self, groups: tuple) -> bytes:
        """The config of these group choices, composed by Hydra once, pickled: unpickling is
        the cheapest exact copy of a config (half of `copy.deepcopy`'s cost)."""
        base = self.bases.get(groups)
        if base is None:
            try:
                base = pickle.dumps(self.loader.load_sweep_config(self.master, list(groups)))
            except Exception as error:  # noqa: BLE001 - said by Hydra for each cell
                base = ComposedAlone(f"{' '.join(groups) or 'the defaults'} alone: "
                                     f"{type(error).__name__}")
            self.bases[groups] = base
        if isinstance(base, ComposedAlone):
            raise base
        return base

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_parser"] = None  # made again where it is unpickled
        state["_jobs"] = {}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._parser = OverridesParser.create()


def _apply(override, config: DictConfig) -> None:
    """One override that is not a config-group choice, applied as Hydra 1.3's config loader
    applies it (`_apply_overrides_to_config`); where Hydra would refuse it, ComposedAlone, so
    that Hydra refuses it in its own words."""
    key, value = override.key_or_group, override.value()
    if override.is_delete():
        present = OmegaConf.select(config, key, throw_on_missing=False)
        if present is None or (value is not None and value != present):
            raise ComposedAlone(f"{override.input_line}: nothing of that value to delete")
        parent, _, name = key.rpartition(".")
        with open_dict(config):
            del (OmegaConf.select(config, parent) if parent else config)[name]
    elif override.is_add():
        if (OmegaConf.select(config, key, throw_on_missing=False) is not None
                and not isinstance(value, (dict, list))):
            raise ComposedAlone(f"{override.input_line}: the key is there already")
        OmegaConf.update(config, key, value, merge=True, force_add=True)
    elif override.is_force_add():
        OmegaConf.update(config, key, value, merge=True, force_add=True)
    else:
        OmegaConf.update(config, key, value, merge=True)


def overrides_dirname(overrides: Sequence, exclude_keys, item_sep: str, kv_sep: str) -> str:
    """`hydra.job.override_dirname` as Hydra 1.3 writes it: the overrides not excluded, as
    typed, sorted, joined by `item_sep`, every `=` written as `kv_sep`."""
    lines = sorted(override.input_line for override in overrides
                   if override.key_or_group not in exclude_keys)
    return re.sub("[=]", kv_sep, item_sep.join(lines))


class PrecomposedConfigLoader(ConfigLoader):
    """Hydra's config loader as the sweeper hands it to its launcher: a cell is composed by the
    sweep's GridComposer (composing it anew costs about 75 ms), with the sweep's environment;
    anything else is asked of Hydra's own loader. Pickled to a worker (joblib, submitit), it
    takes the bases the grid was composed from, so the worker composes no cell with Hydra."""

    def __init__(self, loader: ConfigLoader) -> None:
        self.loader = loader
        self.composer: Optional[GridComposer] = None
        self.env: dict = {}  # what every job finds in its environment (`hydra.job.env_set`)

    def serve(self, composer: GridComposer, env: dict) -> None:
        self.composer, self.env = composer, dict(env)

    def load_sweep_config(self, master_config: DictConfig,
                          sweep_overrides: List[str]) -> DictConfig:
        if self.composer is None:
            return self.loader.load_sweep_config(master_config, sweep_overrides)
        config, _ = self.composer.compose(sweep_overrides)
        with open_dict(config.hydra), read_write(config.hydra):
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
