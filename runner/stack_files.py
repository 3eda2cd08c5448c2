"""Config files from outside the runner, read as data before Hydra reads them.

A `--config-dir` is where a user keeps stacks, their own or a colleague's. Hydra lets any of its
files reach the whole config: a `# @package _global_` line, a `defaults:` entry into `hydra/`,
or a file that shadows one of Hydra's own (`DIR/hydra/job_logging/default.yaml`). Hydra then
instantiates callbacks and logging handlers, sets the environment and makes directories before
the runner's task function, and so before its allowlist of `_target_`s, sees anything. So the
files are read here, as YAML text, before Hydra starts:

- a stack file (any file of the `model` group, in `conf/` or a `--config-dir`) sets `model.*`
  alone: no `# @package` line other than the default, and `defaults:` that name other stacks;
- no other file of a `--config-dir` sets Hydra's own keys (only `hydra.sweeper.params`, whose
  keys are the runner's knobs), reaches `hydra/` through its defaults, or chooses the store
  (`tracking.uri`, `tracking.artifact_root`).

The user's command line and their own config tree (the runner's `conf/`, or the one that
`--config-path` puts in its place) are trusted beyond their stack files: docs/shared-stacks.md
says the same for users."""

import argparse
import os
import re
import sys
from importlib import resources
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import yaml

STACK_GROUP = "model"
HYDRA_KEYS_ALLOWED = ("hydra.sweeper.params",)  # a sweep preset's grid: the runner's knobs
STORE_KEYS = ("tracking.uri", "tracking.artifact_root")
PACKAGE_LINE = re.compile(r"^\s*#\s*@package\s+(\S+)")
RUNNER_DIR = Path(__file__).resolve().parent  # where a relative --config-path starts


class FileRefused(ValueError):
    """A config file that may not be read; the message is the user's one line."""


def refuse_unsafe_config_files(argv: List[str]) -> None:
    """End the process with one line on stderr when a config file the command would read may
    set what only the user decides; before Hydra reads, runs or writes anything."""
    try:
        check_config_files(argv)
    except FileRefused as refusal:
        print(refusal, file=sys.stderr)
        sys.exit(1)


def check_config_files(argv: List[str]) -> None:
    """FileRefused naming the first file and key at fault, for the files of `argv`'s search
    path: the stack files of the user's own config tree (the runner's `conf/`, or the one
    `--config-path` names instead), and every YAML file of a `--config-dir`."""
    for directory in [Path(str(resources.files("runner.conf"))), *own_directories(argv)]:
        for path, relative in _yaml_files(directory / STACK_GROUP):
            check_stack_file(path, f"{STACK_GROUP}/{relative}")
    for directory in shared_directories(argv):
        for path, relative in _yaml_files(directory):
            if relative.split("/", 1)[0] == STACK_GROUP:
                check_stack_file(path, relative)
            else:
                check_shared_file(path, relative)


def shared_directories(argv: List[str]) -> List[Path]:
    """The directories of config files that `argv` adds to Hydra's search path: `--config-dir`,
    and `file://` entries of a `hydra.searchpath` override."""
    args, rest = _hydra_flags(argv)
    if args is None:
        return []
    directories = [Path(os.path.abspath(d)) for d in args.config_dir or []]
    directories += _search_path_overrides(rest)
    return [d for d in directories if d.is_dir()]


def own_directories(argv: List[str]) -> List[Path]:
    """The config tree that `--config-path` puts in place of the runner's `conf/`: the user's
    own, as `conf/` is, so only its stack files are checked."""
    args, _ = _hydra_flags(argv)
    directories = []
    for config_path in (args.config_path or []) if args is not None else []:
        if "://" not in config_path:  # relative to the app's module, as Hydra reads it
            directories.append(RUNNER_DIR / os.path.expanduser(config_path))
        elif config_path.startswith("file://"):
            directories.append(Path(config_path.removeprefix("file://")))
    return [d for d in directories if d.is_dir()]


def _hydra_flags(argv: List[str]):
    """Hydra's flags and the other arguments, or (None, []) where Hydra will refuse them."""
    try:
        return _HydraFlags().parse_known_args(argv[1:])
    except ValueError:  # Hydra says what is wrong with its flags, as ever
        return None, []


def check_stack_file(path: Path, relative: str) -> None:
    """A stack file describes a stack: its keys stay under its own package, and its defaults
    name other stacks only."""
    text, config = _read(path)
    if config is None:
        return
    default = _default_package(relative)
    package = _package_line(text)
    if package not in (None, "_group_", default):
        keys = [key for key, _ in _keys(config, _absolute(package, relative))]
        outside = next((key for key in keys if not _under(key, default)), None)
        if outside is not None:
            raise FileRefused(f"{path}: {outside}: outside the model ('# @package {package}'); "
                              f"a stack file sets {default}.* only")
        raise FileRefused(f"{path}: # @package {package}: a stack file keeps its own package "
                          f"({default}); remove the line")
    for entry, reached in _defaults(config, relative):
        if isinstance(entry, dict) or "/" in reached.removeprefix(f"{default.replace('.', '/')}/") \
                or "@" in str(entry) or entry == "":
            if "@" in str(entry):  # the config's keys go wherever its package says
                reached += "@" + str(entry).split("@", 1)[1].split(":")[0]
            raise FileRefused(f"{path}: defaults: {_spelled(entry)} reaches {reached}; a stack "
                              f"file's defaults name only other stacks ({STACK_GROUP}/NAME) "
                              f"and _self_")


def check_shared_file(path: Path, relative: str) -> None:
    """Any other file of a `--config-dir`: the config it sets, but not Hydra's own keys, what
    Hydra instantiates, the environment, or the store."""
    text, config = _read(path)
    if config is None:
        return
    package = _absolute(_package_line(text), relative)
    for entry, reached in _defaults(config, relative):
        if _under(reached.replace("/", "."), "hydra"):
            group = reached.rsplit("/", 1)[0] if isinstance(entry, str) else reached
            raise FileRefused(f"{path}: defaults: {_spelled(entry)} reaches Hydra's own config "
                              f"({group}); choose it on the command line: {group}=NAME")
        if "@" in str(entry):
            raise FileRefused(f"{path}: defaults: {_spelled(entry)} moves a config into another "
                              f"package; a shared file's defaults keep each config in its group")
    for key, value in _keys(config, package):
        refusal = _key_refusal(key)
        if refusal is None and any(_under(key, k) for k in HYDRA_KEYS_ALLOWED) \
                and key.count(".") > 2:  # a swept key: the cells get it as an override
            swept = key.split(".", 3)[3].lstrip("+~")
            refusal = _key_refusal(swept.replace("/", "."))
        if refusal is not None:
            raise FileRefused(f"{path}: {key}: {refusal}")


def _key_refusal(key: str) -> Optional[str]:
    """Why a shared file may not set `key`, or None."""
    if any(_under(key, store) for store in STORE_KEYS):
        return ("where runs go is the user's choice (MLFLOW_TRACKING_URI, or tracking.uri on "
                "the command line), not a shared file's")
    if _under(key, "hydra") and not any(_under(key, k) for k in HYDRA_KEYS_ALLOWED):
        return ("Hydra's own key, not a shared file's: only hydra.sweeper.params may come from "
                "a --config-dir; type the rest on the command line")
    return None


def _read(path: Path) -> Tuple[str, Optional[dict]]:
    """The file's text and its YAML mapping; None where it is not one (Hydra refuses it, and
    nothing runs)."""
    try:
        text = path.read_text()
        config = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return "", None
    return text, (config if isinstance(config, dict) else {} if config is None else None)


def _package_line(text: str) -> Optional[str]:
    """The `# @package` of the file's opening comments, as Hydra reads its header; stricter, in
    that a line after the first ordinary comment counts too."""
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return None
        match = PACKAGE_LINE.match(line)
        if match:
            return match.group(1)
    return None


def _default_package(relative: str) -> str:
    """Hydra's package for a file at `relative` in its search path: its group, dotted."""
    return relative.rsplit("/", 1)[0].replace("/", ".") if "/" in relative else ""


def _absolute(package: Optional[str], relative: str) -> str:
    """The dotted key under which a file's keys land ("" for the top)."""
    if package is None or package == "_group_":
        return _default_package(relative)
    package = package.replace("_group_", _default_package(relative))
    return "" if package == "_global_" else package.removeprefix("_global_.")


def _keys(config: dict, package: str, top: bool = True) -> Iterator[Tuple[str, object]]:
    """(dotted key, value) for every leaf of `config` set under `package`; a key holding a
    `_target_` or `()` is named by the node that holds it. The file's own `defaults` is its
    defaults list, whatever its package."""
    for key, value in config.items():
        if top and key == "defaults":
            continue
        full = f"{package}.{key}" if package else str(key)
        if isinstance(value, dict) and value and not ({"_target_", "()"} & set(value)):
            yield from _keys(value, full, top=False)
        else:
            yield full, value


def _defaults(config: dict, relative: str) -> Iterator[Tuple[object, str]]:
    """(entry as written, the config or group it reaches, from the search path's top) for each
    entry of the file's defaults list but `_self_`."""
    entries = config.get("defaults") or []
    if not isinstance(entries, list):
        entries = [entries]
    here = relative.rsplit("/", 1)[0] if "/" in relative else ""
    for entry in entries:
        if entry == "_self_":
            continue
        if isinstance(entry, dict):
            name = " ".join(str(k) for k in entry).split()[-1] if entry else ""
        else:
            name = str(entry).split()[-1] if str(entry).split() else ""
        name = name.split("@", 1)[0]
        reached = name[1:] if name.startswith("/") else f"{here}/{name}".lstrip("/")
        yield entry, reached


def _spelled(entry) -> str:
    """A defaults entry as the file writes it."""
    if isinstance(entry, dict):
        return "'" + ", ".join(f"{k}: {v}" for k, v in entry.items()) + "'"
    return f"'{entry}'"


def _under(key: str, prefix: str) -> bool:
    return key == prefix or key.startswith(f"{prefix}.")


def _yaml_files(directory: Path) -> Iterator[Tuple[Path, str]]:
    """(path, path relative to `directory`) of every `.yaml` file below it, in a stable order;
    a directory linked twice is read once."""
    seen = set()
    for root, dirs, files in os.walk(directory, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".yaml"):
                path = Path(root) / name
                yield path, path.relative_to(directory).as_posix()


def _search_path_overrides(overrides: List[str]) -> List[Path]:
    """The `file://` directories a typed `hydra.searchpath=[...]` adds."""
    typed = [o for o in overrides if o.lstrip("+~").startswith("hydra.searchpath=")]
    if not typed:
        return []
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(typed)
    except Exception:  # Hydra says what it cannot read, as ever
        return []
    directories = []
    for override in parsed:
        value = override.value()
        for entry in value if isinstance(value, list) else [value]:
            if isinstance(entry, str) and entry.startswith("file://"):
                directories.append(Path(os.path.abspath(entry.removeprefix("file://"))))
    return directories


class _HydraFlags(argparse.ArgumentParser):
    """The flags of Hydra's command line that choose config files, read as Hydra's own parser
    reads them (abbreviations too); an error raises instead of ending the process."""

    def __init__(self) -> None:
        super().__init__(add_help=False)
        self.add_argument("--config-path", "-cp", action="append")
        self.add_argument("--config-dir", "-cd", action="append")
        self.add_argument("--config-name", "-cn")
        # Hydra's other flags that take a value, so that the value is not read as an override
        self.add_argument("--cfg", "-c")
        self.add_argument("--package", "-p")
        self.add_argument("--info", "-i", nargs="?")
        self.add_argument("--experimental-rerun")
        self.add_argument("--shell-completion", "-sc", action="store_true")
        for flag in (("--help", "-h"), ("--hydra-help",), ("--version",), ("--resolve",),
                     ("--run", "-r"), ("--multirun", "-m")):
            self.add_argument(*flag, action="store_true")

    def error(self, message: str):
        raise ValueError(message)
