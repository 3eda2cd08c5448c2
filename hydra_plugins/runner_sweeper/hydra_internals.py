"""Every use of Hydra's private names by the runner, in one place.

Hydra 1.3 has no public base for a grid sweeper, no public way to tell where a launcher runs
its jobs, to read a failed job's return, or to hand a launcher configs composed beforehand.
`tests/test_hydra_internals.py` fails loudly when a Hydra release changes any of these."""

from typing import Any

from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.utils import JobReturn
from omegaconf import DictConfig, OmegaConf, open_dict

__all__ = ["BasicSweeper", "ComposedOnce", "jobs_run_here", "returned"]


def jobs_run_here(launcher) -> bool:
    """Whether this launcher runs the jobs in this very process (Hydra's basic launcher)."""
    return isinstance(launcher, BasicLauncher)


def returned(job: JobReturn) -> Any:
    """What the task function returned, or the exception it raised (`JobReturn.return_value`
    raises the latter instead of returning it)."""
    return job._return_value


class ComposedOnce:
    """The config loader, answering the launcher with the configs composed and checked before
    the sweep began (composing one again costs about 75 ms), given the sweep's environment.
    Pickled to a worker process, it is the plain loader again."""

    def __init__(self, loader, composed: dict, env: dict) -> None:
        self.loader, self.composed, self.env = loader, composed, env

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides) -> DictConfig:
        config = self.composed.pop(tuple(sweep_overrides), None)
        if config is None:
            return self.loader.load_sweep_config(master_config, sweep_overrides)
        OmegaConf.set_readonly(config.hydra, None)  # as composed: HydraConfig had locked it
        with open_dict(config.hydra):
            config.hydra.overrides.hydra = list(master_config.hydra.overrides.hydra)
            config.hydra.job.env_set.update(self.env)
        OmegaConf.copy_cache(from_config=master_config, to_config=config)  # ${now:} as the sweep's
        return config

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)

    def __reduce__(self):
        return _plain_loader, (self.loader,)


def _plain_loader(loader):
    return loader
