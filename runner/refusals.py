"""What Hydra and OmegaConf refuse while composing a user's overrides, said in the runner's one
line: the dotted key first, then what is allowed, and a "did you mean" where one is close."""

import dataclasses
import re
from typing import Mapping, Optional, Sequence

from runner.errors import dotted
from runner.schema import RunnerSchema
from runner.vocabulary import LAYERS, did_you_mean, spell_overrides

GRAMMAR = "https://hydra.cc/docs/advanced/override_grammar/basic/"
KINDS = {"model": "stack", "sweep": "sweep"}  # what an option of a config group is called


def one_line(error: BaseException, overrides: Sequence[str] = (),
             grid: bool = False) -> Optional[str]:
    """The line for a refusal of the user's overrides, or None for any other error. In a
    `grid`, a key to add is added with `++`, which also overrides it in the model files of the
    grid that set it."""
    from hydra.errors import (ConfigCompositionException, MissingConfigException,
                              OverrideParseException, SearchPathException)

    unreadable = _yaml_error(error)
    if unreadable is not None:
        return unreadable
    if isinstance(error, SearchPathException):
        return _no_config_dir(str(error))
    if isinstance(error, MissingConfigException):
        return _missing_option(str(error))
    if isinstance(error, OverrideParseException):
        return _unreadable(str(error), overrides)
    if isinstance(error, ConfigCompositionException):
        return _composition(error, overrides, grid)
    return None


def _yaml_error(error: BaseException) -> Optional[str]:
    """`FILE:LINE:COLUMN: the parser's reason`, for a config file YAML cannot read (the error
    itself, or what Hydra wrapped)."""
    import yaml

    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
            mark = error.problem_mark
            reason = "; ".join(part for part in (error.context, error.problem) if part)
            return f"{mark.name}:{mark.line + 1}:{mark.column + 1}: {reason}"
        error = error.__cause__ or error.__context__
    return None


def unknown_option(choices: Mapping, loader) -> Optional[str]:
    """The line for a config group given an option that does not exist, or None: Hydra leaves
    an optional group's missing option out without a word (`sweep=sed` would run no sweep)."""
    sources = loader.get_sources()
    for group, name in choices.items():
        if group.startswith("hydra/") or name is None:
            continue
        if not name or not any(source.is_config(f"{group}/{name}") for source in sources):
            return _no_option(group, name, loader.get_group_options(group))
    return None


def _full_key(text: str) -> str:
    match = re.search(r"full_key: (\S+)", text)
    key = match.group(1) if match else ""
    return dotted(key)


def _composition(error, overrides: Sequence[str], grid: bool = False) -> Optional[str]:
    from omegaconf.errors import (ConfigAttributeError, ConfigIndexError, ConfigKeyError,
                                  ValidationError)

    text, cause = str(error), error.__cause__
    ambiguous = re.match(r"Ambiguous value for argument '([^=]+)=(.*)'", text)
    if ambiguous:
        key, value = ambiguous.groups()
        return (f"{key}: {value} is several values: add -m to sweep them, or give one "
                f"({key}={value.split(',')[0]})")
    twice = (re.match(r"Multiple values for (\S+)\. To override a value use 'override \S+: (.*)'",
                      text)
             or re.match(r"(\S+) appears more than once in the final defaults list", text))
    if twice:  # `+model=gru`: the group is in the defaults list already
        group = twice.group(1)
        added = [o.split("=", 1)[1] for o in overrides if o.startswith(f"+{group}=")]
        name = (twice.groups()[1:] or added or ["NAME"])[0]
        return f"{group}: already chosen by default; write {group}={name}"
    present = re.match(r"Could not append to config\. An item is already at '([^']+)'", text)
    if present:  # `+key=value` for a key the file sets: a plain override changes it
        key = dotted(present.group(1))
        value = next((o.split("=", 1)[1] for o in overrides
                      if o.lstrip("+").split("=", 1)[0] == key), "VALUE")
        return (f"{key}: already set in the model file; change it without +: "
                f"{spell_overrides(f'{key}={value}')}")
    own = dotted(_wanted(text))
    if isinstance(cause, ConfigKeyError) and own.startswith("data.inputs."):
        # data.inputs starts empty: an input's own size is added to it, as a new key is
        value = next((o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] == own), "N")
        added = spell_overrides(("++" if grid else "+") + f"{own}={value}")
        return f"{own}: an input's own size is added, not changed: write {added}"
    if isinstance(cause, ConfigKeyError) and "." in _full_key(str(cause)).removeprefix(
            "model.layers."):  # a key under one the model file does not set: `+` adds no path
        missing = _full_key(str(cause))
        parent, name = missing.rsplit(".", 1)
        return f"{dotted(_wanted(text))}: {parent} has no {name!r} in this model file"
    if isinstance(cause, ConfigAttributeError):
        append = re.search(r"use (\+\S+)", text)
        added = spell_overrides(("+" if grid else "") + append.group(1)) if append else None
        return _unknown_key(_full_key(str(cause)), added)
    if isinstance(cause, ConfigIndexError):
        key = _full_key(str(cause))
        return f"{key}: no such item: {key.rsplit('.', 1)[0]} has fewer entries"
    if isinstance(cause, ValidationError):
        return _wrong_value(_full_key(str(cause)), str(cause).splitlines()[0])
    first = text.splitlines()[0] if text else type(error).__name__
    return f"error: {first}" + (f": {str(cause).splitlines()[0]}" if cause else "")


def _wanted(text: str) -> str:
    """The key an override named, from Hydra's "Could not override 'KEY'"."""
    match = re.search(r"Could not (?:override|append to config)\. ?'?([^'\s]+)'", text)
    match = match or re.search(r"Could not override '([^']+)'", text)
    return match.group(1) if match else ""


def _schema_fields(key: str):
    """The fields the schema allows beside `key`, or None where the config is free-form."""
    schema = RunnerSchema
    for part in key.split(".")[:-1]:
        fields = {f.name: f for f in dataclasses.fields(schema)}
        if part not in fields or not dataclasses.is_dataclass(fields[part].type):
            return None
        schema = fields[part].type
    return [f.name for f in dataclasses.fields(schema)]


def _unknown_key(key: str, append) -> str:
    name = key.rsplit(".", 1)[-1]
    fields = _schema_fields(key)
    if fields is not None:
        prefix = key[:-len(name)]
        return f"{key}: unknown key{did_you_mean(name, fields, prefix)}; known: {', '.join(fields)}"
    layer = re.match(r"(model\.layers\.\d+(?:\.layer)?)\.", key)
    if layer:  # an argument the model file does not set: `+` adds it, if the layer takes it
        known = sorted(set().union(*LAYERS.values()))
        if name in known and append:
            return f"{key}: not set in the model file; add it with {append}"
        return (f"{key}: unknown argument{did_you_mean(name, known)}; "
                f"a layer takes the arguments of its Keras class")
    return f"{key}: unknown key" + (f"; add it with {append}" if append else "")


def _wrong_value(key: str, reason: str) -> str:
    value = re.search(r"[Vv]alue '([^']*)'", reason)
    got = f", got {value.group(1)!r}" if value else ""
    if "to Integer" in reason:
        return f"{key}: must be an integer{got}"
    if "to Float" in reason:
        return f"{key}: must be a number{got}"
    if "not a valid bool" in reason:
        return f"{key}: must be true or false{got}"
    choices = re.search(r"Invalid value '([^']*)', expected one of \[(.*)\]", reason)
    if choices:
        word, allowed = choices.group(1), choices.group(2).split(", ")
        return f"{key}: {word!r} is not one of {', '.join(allowed)}{did_you_mean(word, allowed)}"
    return f"{key}: {reason}"


def _missing_option(text: str) -> str:
    primary = re.match(r"Cannot find primary config '([^']*)'", text)
    if primary:
        return (f"--config-name: no config named {primary.group(1)!r} on the search path; the "
                f"runner's is config, a config of yours is DIR/NAME.yaml with --config-dir=DIR")
    wanted = re.search(r"Could not find '([^']+)/([^']*)'", text)
    if not wanted:
        return f"error: {text.splitlines()[0]}"
    options = re.findall(r"^\t(\S+)$", text.split("Available options", 1)[-1], re.M)
    return _no_option(*wanted.groups(), [o for o in options if "=" not in o])


def _no_option(group: str, name: str, options: Sequence[str]) -> str:
    kind, available = KINDS.get(group, "config"), ", ".join(options) or "none"
    if not name:  # `model=`
        return f"{group}: needs a {kind} name; available: {available}"
    return f"{group}: no {kind} named {name!r}{did_you_mean(name, options)}; available: {available}"


def _no_config_dir(text: str) -> Optional[str]:
    missing = re.match(r"Additional config directory '(.*)' not found", text)
    if not missing:
        return None
    return (f"--config-dir: no directory {missing.group(1)}; give a directory that holds "
            f"model/NAME.yaml")


def _unreadable(text: str, overrides: Sequence[str]) -> str:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for override in overrides:
        try:
            parser.parse_overrides([override])
        except Exception as error:
            reason = "; ".join(line.strip() for line in str(error).splitlines()
                               if line.strip() and not line.startswith(("Error parsing", "See ")))
            key = override.split("=", 1)[0].lstrip("+~")
            return (f"{key}: cannot read {override!r} ({reason or 'bad syntax'}); "
                    f"the override grammar: {GRAMMAR}")
    return f"error: {text.splitlines()[0]}"
