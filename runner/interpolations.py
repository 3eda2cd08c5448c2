"""Which keys a config's interpolations read, decided by resolving them, not by reading their
text: `${return_sequences}`, `${oc.select:return_sequences,false}`, a relative
`${....return_sequences}` and a resolver's argument all count; a string that merely mentions a
key does not."""

from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf


def keys_read(cfg: DictConfig, keys, under: str = "") -> set:
    """The keys among `keys` (dotted) that an interpolation under `under` ("" for anywhere)
    reads, however it names them: `${return_sequences}`, `${oc.select:return_sequences,false}`,
    a relative `${....return_sequences}`, a resolver's argument.

    Decided by resolving, not by reading text: each key is given its own value and then
    another one, and every interpolation under `under` is resolved with both; one whose value
    changes, or that fails with one value only, reads the key. A string that merely mentions a
    key (`return_sequences`, or an escaped `\\${return_sequences}`) is not an interpolation, or
    resolves the same both times."""
    return {key for key, own, other in _probed(cfg, keys, under) if own != other}


def keys_needed(cfg: DictConfig, keys) -> set:
    """The keys among `keys` (each unset, `???`) without which an interpolation anywhere fails
    that resolves once they have a value."""
    return {key for key, own, other in _probed(cfg, keys, "")
            if any(isinstance(a, _Failed) and not isinstance(b, _Failed)
                   for a, b in zip(own, other))}


@dataclass(frozen=True)
class _Failed:
    """What resolving an interpolation gave when it raised: the kind of error."""
    error: type


def _probed(cfg: DictConfig, keys, under: str):
    """(key, what every interpolation under `under` resolves to with the key's own value,
    the same with another value) for each of `keys` the config has. The config is copied
    untyped, so that a key can take a value of any type."""
    if not keys:
        return
    written = OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)
    probe = OmegaConf.create(written)
    scope = OmegaConf.select(probe, under) if under else probe
    if not OmegaConf.is_config(scope):
        return
    interpolations = list(_interpolations(scope, under))
    as_written = {dotted: _outcome(node, name) for dotted, node, name in interpolations}
    for key in keys:
        own = _written(written, key)
        if own is _ABSENT:
            continue
        OmegaConf.update(probe, key, _another_value(probe, key), merge=False)
        otherwise = {dotted: _outcome(node, name) for dotted, node, name in interpolations}
        OmegaConf.update(probe, key, own, merge=False)
        others = [dotted for dotted in as_written if dotted != key]  # not the key's own
        yield key, [as_written[d] for d in others], [otherwise[d] for d in others]


_ABSENT = object()


def _written(container: dict, key: str):
    """A dotted key's value as written (unresolved) in a plain container, or _ABSENT."""
    for part in key.split("."):
        if not isinstance(container, dict) or part not in container:
            return _ABSENT
        container = container[part]
    return container


def _interpolations(node, prefix: str):
    """(dotted key, parent node, key in it) of every interpolation in a config node."""
    names = node.keys() if isinstance(node, DictConfig) else range(len(node))
    for name in names:
        dotted = f"{prefix}.{name}" if prefix else str(name)
        if OmegaConf.is_interpolation(node, name):
            yield dotted, node, name
        elif not OmegaConf.is_missing(node, name) and OmegaConf.is_config(node[name]):
            yield from _interpolations(node[name], dotted)


def _another_value(probe: DictConfig, key: str):
    """A value of the key's kind other than its own, so that a resolver that tests it (`not`,
    an equality) answers differently; a number while it has none (`???`)."""
    try:
        value = OmegaConf.select(probe, key, throw_on_missing=True)
    except Exception:  # noqa: BLE001 - unset, or an interpolation that cannot resolve yet
        return 1
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    return f"{value}\0another"


def _outcome(node, name):
    """An interpolation's value, or _Failed with the kind of error resolving it raised."""
    try:
        value = node[name]
        return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    except Exception as error:  # noqa: BLE001 - a resolver may raise anything
        return _Failed(type(error))
