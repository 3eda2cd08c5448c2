"""Every cell of a grid composed and checked in a child process, while this one goes on.

The child is forked before TensorFlow is imported here, so it shares Hydra's state as it is
(config loader, search path, the sweep's config) and imports nothing; it sends back each cell's
composed config and what `check` returned of it, or why it is invalid, and exits."""

import os
import pickle
import sys
from typing import Callable, List, Sequence

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

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
    line = one_line(error, cell)
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
