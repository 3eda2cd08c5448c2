"""What Hydra and OmegaConf refuse while composing a user's overrides, said in the runner's one
line: the dotted key first, then what is allowed, and a "did you mean" where one is close."""

import dataclasses
import difflib
import re
from typing import Optional, Sequence

from runner.schema import RunnerSchema
from runner.vocabulary import LAYERS

GRAMMAR = "https://hydra.cc/docs/advanced/override_grammar/basic/"


def one_line(error: BaseException, overrides: Sequence[str] = ()) -> Optional[str]:
    """The line for a refusal of the user's overrides, or None for any other error."""
    from hydra.errors import (ConfigCompositionException, MissingConfigException,
                              OverrideParseException)

    if isinstance(error, MissingConfigException):
        return _missing_option(str(error))
    if isinstance(error, OverrideParseException):
        return _unreadable(str(error), overrides)
    if isinstance(error, ConfigCompositionException):
        return _composition(error)
    return None


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _full_key(text: str) -> str:
    match = re.search(r"full_key: (\S+)", text)
    key = match.group(1) if match else ""
    return re.sub(r"\[(\d+)\]", r".\1", key)  # model.layers[5] -> model.layers.5


def _composition(error) -> Optional[str]:
    from omegaconf.errors import ConfigAttributeError, ConfigIndexError, ValidationError

    text, cause = str(error), error.__cause__
    ambiguous = re.match(r"Ambiguous value for argument '([^=]+)=(.*)'", text)
    if ambiguous:
        key, value = ambiguous.groups()
        return (f"{key}: {value} is several values: add -m to sweep them, or give one "
                f"({key}={value.split(',')[0]})")
    if isinstance(cause, ConfigAttributeError):
        return _unknown_key(_full_key(str(cause)), re.search(r"use (\+\S+)", text))
    if isinstance(cause, ConfigIndexError):
        key = _full_key(str(cause))
        return f"{key}: no such item: {key.rsplit('.', 1)[0]} has fewer entries"
    if isinstance(cause, ValidationError):
        return _wrong_value(_full_key(str(cause)), str(cause).splitlines()[0])
    first = text.splitlines()[0] if text else type(error).__name__
    return f"error: {first}" + (f": {str(cause).splitlines()[0]}" if cause else "")


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
        close = _did_you_mean(name, fields).replace("mean ", f"mean {prefix}")
        return f"{key}: unknown key{close}; known: {', '.join(fields)}"
    layer = re.match(r"(model\.layers\.\d+(?:\.layer)?)\.", key)
    if layer:  # an argument the model file does not set: `+` adds it, if the layer takes it
        known = sorted(set().union(*LAYERS.values()))
        if name in known and append:
            return f"{key}: not set in the model file; add it with {append.group(1)}"
        return (f"{key}: unknown argument{_did_you_mean(name, known)}; "
                f"a layer takes the arguments of its Keras class")
    return f"{key}: unknown key" + (f"; add it with {append.group(1)}" if append else "")


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
        return f"{key}: {word!r} is not one of {', '.join(allowed)}{_did_you_mean(word, allowed)}"
    return f"{key}: {reason}"


def _missing_option(text: str) -> str:
    wanted = re.search(r"Could not find '([^']+)/([^']+)'", text)
    if not wanted:
        return f"error: {text.splitlines()[0]}"
    group, name = wanted.groups()
    options = re.findall(r"^\t(\S+)$", text.split("Available options", 1)[-1], re.M)
    options = [o for o in options if "=" not in o]
    kind = "stack" if group == "model" else "config"
    return (f"{group}: no {kind} named {name!r}{_did_you_mean(name, options)}; "
            f"available: {', '.join(options) or 'none'}")


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
