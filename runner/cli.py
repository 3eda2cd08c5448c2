"""The command line: `python -m runner` and the `runner` console script."""

import os
import re
import runpy
import sys
import traceback
from pathlib import Path

from runner.private_names import exit_now
from runner.stack_files import refuse_unsafe_config_files

FULL_ERROR = "HYDRA_FULL_ERROR"  # Hydra raises what it refuses, instead of printing it


class _ClosedPipeTolerant:
    """stdout that, once its reader has gone (`| head`), stops writing instead of raising in
    the middle of a job: the runs are recorded all the same."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._to_devnull()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._to_devnull()

    def _to_devnull(self) -> None:
        os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def launch(app) -> None:
    """Run the Hydra app, then end the process without Python's teardown of TensorFlow's
    modules (about 0.75 s): every exit hook runs and all output is flushed first.

    What Hydra refuses (a typo, a missing stack, a bad flag) it raises, as it documents for
    HYDRA_FULL_ERROR=1, instead of printing its block of lines: the runner says it in one line,
    or, for an error it does not know, as Hydra would have. A user's HYDRA_FULL_ERROR=1 gets
    Hydra's whole story."""
    try:
        argv = with_stack_files_named(with_home_expanded(sys.argv))
    except ValueError as refusal:
        print(refusal, file=sys.stderr)
        exit_now(1)
    refuse_unsafe_config_files(argv)  # before Hydra reads any file
    register_sweeper()
    sys.argv = with_each_cell_checking_its_own(argv)
    sys.stdout = _ClosedPipeTolerant(sys.stdout)
    full_error = os.environ.get(FULL_ERROR) == "1"
    os.environ[FULL_ERROR] = "1"
    try:
        app()
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    except Exception as error:
        if full_error:
            raise
        code = report(error)
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    exit_now(code)


def report(error: Exception) -> int:
    """What the user is told of an error that ended the app; its exit code."""
    from hydra.errors import CompactHydraException
    from omegaconf.errors import OmegaConfBaseException

    from runner.refusals import one_line

    line = one_line(error, [arg for arg in sys.argv[1:] if not arg.startswith("-")])
    if line is not None:
        print(line, file=sys.stderr)
    elif isinstance(error, ValueError) and re.search(r" --[a-z]", str(error)):
        # Hydra's own flags misused, e.g. `-m` with `--cfg job`
        print(f"error: {str(error).splitlines()[0]}", file=sys.stderr)
    elif isinstance(error, CompactHydraException):  # as Hydra prints it
        print(error, file=sys.stderr)
        if isinstance(error.__cause__, OmegaConfBaseException):
            print(error.__cause__, file=sys.stderr)
        print(f"\nSet the environment variable {FULL_ERROR}=1 for a complete stack trace.",
              file=sys.stderr)
    else:
        traceback.print_exception(error)
    return 1


def with_home_expanded(argv: list) -> list:
    """`--config-dir=~/my_models` (or `-cd=~/...`) with `~` expanded, as Hydra reads it: the
    shell expands a `~` only at the start of a word, not after `=`."""
    expanded, flag = [], None
    for arg in argv:
        name, equals, value = arg.partition("=")
        if flag is not None and arg.startswith("~"):  # `--config-dir '~/my_models'`
            arg = os.path.expanduser(arg)
        elif name in ("--config-dir", "-cd") and equals and value.startswith("~"):
            arg = f"{name}={os.path.expanduser(value)}"
        flag = arg if arg in ("--config-dir", "-cd") else None
        expanded.append(arg)
    return expanded


def with_stack_files_named(argv: list) -> list:
    """`model=PATH/model/NAME.yaml`, a stack file given by its path, as Hydra finds it:
    `--config-dir=PATH model=NAME`. A file elsewhere, or beside a --config-dir of the user's
    own, is refused with the command that runs it (ValueError)."""
    for index, arg in enumerate(argv[1:], start=1):
        key, equals, value = arg.partition("=")
        if key != "model" or not equals or not value.endswith((".yaml", ".yml")):
            continue
        path = Path(value).expanduser().absolute()
        if not path.is_file():
            raise ValueError(f"model: no file {value}; a stack is named by its file's name: "
                             f"--config-dir=DIR model=NAME runs DIR/model/NAME.yaml")
        name = path.name.rsplit(".", 1)[0]
        given = [a for a in argv[1:] if a.split("=", 1)[0] in ("--config-dir", "-cd")]
        if path.parent.name != "model" or given or path.suffix != ".yaml":
            raise ValueError(f"model: a stack is named, not a path: put the file at "
                             f"DIR/model/{name}.yaml and run --config-dir=DIR model={name}")
        return [argv[0], f"--config-dir={path.parent.parent}",
                *argv[1:index], f"model={name}", *argv[index + 1:]]
    return argv


def with_each_cell_checking_its_own(argv: list) -> list:
    """In a sweep whose grid varies a config group (`-m model=a,b`), a key under that group
    (`model.layers.0.mask_zero=true`) given to Hydra as a sweep of that one value:
    `model.layers.0.mask_zero=choice(true)`.

    Hydra composes a sweep's own config with the group's default option (`model=lstm`) and
    the plain overrides before any cell, and refuses there a key that the default's file does
    not set, though every file of the grid sets it. A sweep override is left out of that
    composition and composed into each cell, where the runner checks it against the cell's
    own file (and names the cell where it does not fit). One value swept is that value."""
    if not any(arg in ("-m", "--multirun") for arg in argv[1:]):
        return argv
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    typed = [(index, arg) for index, arg in enumerate(argv) if index and "=" in arg
             and not arg.startswith("-")]
    try:
        overrides = parser.parse_overrides([arg for _, arg in typed])
    except Exception:  # Hydra says what it cannot read, as ever
        return argv
    swept = {o.key_or_group for o in overrides if o.is_sweep_override() and "." not in
             o.key_or_group and not o.is_hydra_override()}
    argv = list(argv)
    for (index, arg), override in zip(typed, overrides):
        group = override.key_or_group.split(".", 1)[0]
        if (group in swept and "." in override.key_or_group and not override.is_sweep_override()
                and not override.is_delete()):
            key, _, value = arg.partition("=")
            argv[index] = f"{key}=choice({value})"
    return argv


def register_sweeper() -> None:
    """Make the runner's sweeper known to Hydra, whatever way the project is installed.

    Hydra finds plugins by walking the directories of the `hydra_plugins` package, which an
    editable install made by an import hook (pip's default) does not have; `Plugins.register`
    is Hydra's own way to add one. After Hydra's scan, so the scan does not run the sweeper's
    module a second time under it."""
    from hydra.core.plugins import Plugins

    plugins = Plugins.instance()  # scans the installed plugins, once per process
    from hydra_plugins.runner_sweeper.grid_sweeper import GridSweeper

    plugins.register(GridSweeper)


def main() -> None:
    # Run as __main__ so Hydra finds conf/ beside the package, exactly as with `python -m runner`
    runpy.run_module("runner", run_name="__main__")
