"""A grid's cells: every combination of the overrides (`split_arguments`), each composed
(runner/composition.py: once per combination of config-group choices) and checked in child
processes while this one goes on (`ComposedAside`, `CellChecker`).

The children are forked before TensorFlow is imported here, so they share Hydra's state as it
is (config loader, search path, the sweep's config) and import nothing; each sends back its
cells' checks, or why they are invalid, and exits."""

import itertools
import os
import pickle
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, read_write

from runner.composition import GridComposer
from runner.errors import ConfigError
from runner.identity import config_sha256, job_name
from runner.interpolations import HYDRA_PER_CELL, ProbeMemo, hydra_reads, related, value_at
from runner.refusals import one_line, unknown_option
from runner.validate import validate
from runner.vocabulary import spell_overrides

# Cells a child process checks at least: below twice this, one child checks the whole grid
CELLS_A_CHILD = 200


class CellChecker:
    """Each cell composed as its job will find it (its config without `hydra`, and Hydra's
    config as `${hydra:...}` reads it), and what `check(job, memo)` returns of it.

    A cell is composed from its base without its `hydra` node (GridComposer.compose_job);
    `${hydra:...}` reads its base's Hydra config, set once, with the two values Hydra writes
    for each cell. That is exact wherever the paths read hold plain values, as
    `${hydra:runtime.cwd}` does; where one holds an interpolation (it may read the cell's
    keys), the cell is checked again on its whole config, as are the base's later cells.
    `check` gets a ProbeMemo (runner/interpolations.py) kept for each base."""

    def __init__(self, composer: GridComposer, check: Callable) -> None:
        self.composer, self.check = composer, check
        self._hydra: Dict[tuple, Any] = {}  # base -> Hydra's config of it (HydraConfig's own)
        self._written: Dict[tuple, dict] = {}  # base -> its hydra node as written
        self._memos: Dict[tuple, ProbeMemo] = {}
        self._whole: set = set()  # bases whose cells are checked on their whole config
        self._refusals: Dict[tuple, Optional[str]] = {}  # base -> its choices' refusal, or None

    def outcome(self, cell: Sequence[str]) -> tuple:
        """(cell, checked, None, alone) or (cell, None, why it is invalid, alone); `alone`:
        why Hydra composed the cell alone, or None."""
        alone = None
        try:
            checked, alone = self._checked(cell)
            return cell, checked, None, alone
        except Exception as error:  # every composition or validation error, whatever its kind
            return cell, None, _reason(error, cell), alone

    def _checked(self, cell: Sequence[str]) -> tuple:
        split = self.composer.split(cell)
        if split is None or split[0] in self._whole:
            return self._checked_whole(cell)
        groups, varying = split
        try:
            job = self.composer.compose_job(cell)
            hydra = self._hydra_of(groups)
        except Exception:  # noqa: BLE001 - Hydra composes it alone, and says why if it fails
            return self._checked_whole(cell)
        if groups not in self._refusals:  # `sweep=sed,seed`: the same for each of its cells
            self._refusals[groups] = unknown_option(hydra.hydra.runtime.choices,
                                                    self.composer.loader)
        if self._refusals[groups] is not None:
            raise ConfigError(self._refusals[groups])
        task, dirname = self.composer.written_for(cell, hydra.hydra)
        with read_write(hydra.hydra):
            hydra.hydra.overrides.task, hydra.hydra.job.override_dirname = task, dirname
        HydraConfig.instance().cfg = hydra  # `${hydra:...}` resolves as in the job
        memo = self._memos.setdefault((groups, varying), ProbeMemo(varying))
        with hydra_reads() as paths:
            try:
                checked, error = self.check(job, memo), None
            except Exception as raised:  # noqa: BLE001 - raised below, once it is known exact
                checked, error = None, raised
        if not all(self._plain(groups, path, task, dirname) for path in paths):
            self._whole.add(groups)
            return self._checked_whole(cell)
        if error is not None:
            raise error
        return checked, None

    def _checked_whole(self, cell: Sequence[str]) -> tuple:
        """The cell on its whole config, HydraConfig set from it, as its job will have it."""
        config, alone = self.composer.compose(cell)
        refusal = unknown_option(config.hydra.runtime.choices, self.composer.loader)
        if refusal is not None:
            raise ConfigError(refusal)
        HydraConfig.instance().set_config(config)
        job = OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])
        return self.check(job, None), alone

    def _hydra_of(self, groups: tuple):
        """HydraConfig's config for the base of `groups`, made once (set_config copies it)."""
        hydra = self._hydra.get(groups)
        if hydra is None:
            base = pickle.loads(self.composer.base(groups))
            HydraConfig.instance().set_config(base)
            hydra = self._hydra[groups] = HydraConfig.instance().cfg
            self._written[groups] = OmegaConf.to_container(base.hydra, resolve=False)
        return hydra

    def _plain(self, groups: tuple, path: str, task: list, dirname: str) -> bool:
        """Whether `${hydra:PATH}` reads plain values only, here as in the cell's own config:
        the two values written for the cell, or the base's."""
        path = path.strip(".")
        if any(related(path, field) for field in HYDRA_PER_CELL) and not (
                _no_interpolation(task) and _no_interpolation(dirname)):
            return False
        if any(path == field or path.startswith(field + ".") for field in HYDRA_PER_CELL):
            return True
        written = self._written[groups]
        return _no_interpolation(value_at(written, path) if path else written)


def _no_interpolation(value) -> bool:
    if isinstance(value, dict):
        return all(_no_interpolation(child) for child in value.values())
    if isinstance(value, list):
        return all(_no_interpolation(child) for child in value)
    return not (isinstance(value, str) and "${" in value)


def _reason(error: Exception, cell: Sequence[str]) -> str:
    """Why a cell is invalid, in one line: as a single run with its overrides is refused."""
    line = one_line(error, cell, grid=True)
    if line is not None:
        return line
    reasons = [str(error)] + ([str(error.__cause__)] if error.__cause__ else [])
    return " ".join(" ".join(reasons).split())


def _outcomes(composer: GridComposer, cells: List[tuple], check: Callable) -> list:
    """(cell, checked, None, alone) or (cell, None, why it is invalid, alone), for every cell;
    `alone`: why Hydra composed the cell alone, or None."""
    checker = CellChecker(composer, check)
    return [checker.outcome(cell) for cell in cells]


class ComposedAside:
    """The grid's outcomes (CellChecker's), composed and checked in forked children (a child
    for every CELLS_A_CHILD cells, at most one a core), or here, where there is no fork. The
    children send back the bases they composed, so that this process serves every cell
    without composing them again."""

    def __init__(self, composer: GridComposer, cells: List[tuple], check: Callable) -> None:
        self.composer = composer
        self._outcomes = None
        if not hasattr(os, "fork"):
            self._outcomes = _outcomes(composer, cells, check)
            return
        children = max(1, min(len(cells) // CELLS_A_CHILD, len(os.sched_getaffinity(0))))
        size = -(-len(cells) // children) if cells else 0
        sys.stdout.flush()
        sys.stderr.flush()
        self._children = []
        for share in ([cells[i:i + size] for i in range(0, len(cells), size)] or [[]]):
            reading, writing = os.pipe()
            pid = os.fork()
            if pid == 0:  # a child: compose, send, and leave without running any exit hook
                code = 0
                try:
                    os.nice(10)  # TensorFlow's import in the parent is the longer road: it goes first
                    os.close(reading)
                    outcomes = _outcomes(composer, share, check)
                    with os.fdopen(writing, "wb") as pipe:
                        pickle.dump((outcomes, composer.bases), pipe)
                except BaseException:
                    code = 1
                finally:
                    os._exit(code)
            os.close(writing)
            self._children.append((pid, os.fdopen(reading, "rb")))

    def result(self) -> list:
        """(cell, checked, None, alone) or (cell, None, reason, alone) for every cell, in grid
        order; `alone`: why Hydra composed that cell alone, or None."""
        if self._outcomes is None:
            outcomes = []
            try:
                for _, pipe in self._children:
                    try:
                        share, bases = pickle.load(pipe)
                    except (EOFError, pickle.UnpicklingError) as error:
                        raise RuntimeError("a process composing the grid ended without an "
                                           "answer") from error
                    outcomes += share
                    for groups, base in bases.items():
                        self.composer.bases.setdefault(groups, base)
            finally:
                for pid, pipe in self._children:
                    pipe.close()
                    os.waitpid(pid, 0)
            self._outcomes = outcomes
        return self._outcomes


def config_digest(config, memo=None) -> str:
    """A cell's job config checked, and its digest as its run's `config.sha256` will be."""
    return config_sha256(validate(config, HydraConfig.get().overrides.task, memo).config)


def checked_cell(config, memo=None) -> tuple:
    """(the digest, as `config_digest`; the overrides the cell's job will have, and its
    spec): kept for a job run in this process (runner.validate.keep_checked), which is then
    not checked twice."""
    task = tuple(HydraConfig.get().overrides.task)
    spec = validate(config, task, memo)
    return config_sha256(spec.config), (task, spec)


def explained_cell(config, memo=None):
    """A cell's table, or why Keras cannot build its stack, named as its job would be."""
    from runner.explain import explain_config

    hydra_cfg = HydraConfig.get()
    return explain_config(config, job_name(hydra_cfg.job), hydra_cfg.overrides.task, memo)


def composed_alone(outcomes: list) -> list:
    """`grid: ...` lines for verbose=true: how many cells Hydra composed alone, and why."""
    alone = [(cell, why) for cell, _, _, why in outcomes if why]
    if not alone:
        return []
    lines = [f"grid: {len(outcomes) - len(alone)} of {len(outcomes)} cells composed from their "
             f"config-group choices' config; {len(alone)} by Hydra alone:"]
    reasons: Dict[str, list] = {}
    for cell, why in alone:
        reasons.setdefault(why, []).append(" ".join(spell_overrides(o) for o in cell))
    for why, named in reasons.items():
        more = f" and {len(named) - 1} more" if len(named) > 1 else ""
        lines.append(f"  {named[0]}{more}: {why}")
    return lines


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
