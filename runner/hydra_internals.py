"""Every use of Hydra's private names by the runner, in one place.

Hydra 1.3 has no public base for a grid sweeper, no public way to tell where a launcher runs
its jobs, to read a failed job's return, to hand a launcher configs composed beforehand, or to
say a composition error in the app's own words. `tests/test_hydra_internals.py` fails loudly
when a Hydra release changes any of these."""

import os
import sys
from typing import Any, Callable, Optional

from hydra.core.utils import JobReturn
from omegaconf import DictConfig, OmegaConf, open_dict

__all__ = ["BasicSweeper", "ComposedOnce", "jobs_run_here", "report_errors_with", "returned"]


def __getattr__(name: str):
    """`BasicSweeper`, imported when the sweeper's module asks for it: Hydra's plugin scan
    executes its core plugins' modules again, and `BasicSweeper.__init__` names its class by
    the module's global, so a subclass must derive from the class the scan left there."""
    if name == "BasicSweeper":
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

        return BasicSweeper
    raise AttributeError(name)


def report_errors_with(one_line: Callable[[BaseException, list], Optional[str]]) -> None:
    """Hydra prints what it refuses while composing as a block of lines (its `run_and_report`);
    the errors `one_line` knows are printed as its one line instead, exit code 1. Any other
    error, and every error under HYDRA_FULL_ERROR=1, is Hydra's to report as ever."""
    from hydra._internal import utils

    report = getattr(utils.run_and_report, "hydra_reports", utils.run_and_report)

    def run_and_report(function):
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            return report(function)
        try:
            return function()
        except Exception as error:
            line = one_line(error, [a for a in sys.argv[1:] if not a.startswith("-")])
            if line is None:
                return report(lambda: _raise(error))
            print(line, file=sys.stderr)
            sys.exit(1)

    run_and_report.hydra_reports = report
    utils.run_and_report = run_and_report


def _raise(error: BaseException):
    raise error


def jobs_run_here(launcher) -> bool:
    """Whether this launcher runs the jobs in this very process (Hydra's basic launcher)."""
    from hydra._internal.core_plugins.basic_launcher import BasicLauncher

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
