"""Which keys a config's interpolations read, decided by resolving them, not by reading their
text: `${return_sequences}`, `${oc.select:return_sequences,false}`, a relative
`${....return_sequences}` and a resolver's argument all count; a string that merely mentions a
key does not.

A grid asks the same of many configs that differ only at the keys its cells override: a
`ProbeMemo` answers such a config without resolving anything when the values its answer
depended on are those of a config answered before."""

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional, Sequence

from omegaconf import DictConfig, OmegaConf


def keys_read(cfg: DictConfig, keys, under: str = "", memo: "Optional[ProbeMemo]" = None,
              written: Optional[dict] = None) -> set:
    """The keys among `keys` (dotted) that an interpolation under `under` ("" for anywhere)
    reads, however it names them: `${return_sequences}`, `${oc.select:return_sequences,false}`,
    a relative `${....return_sequences}`, a resolver's argument.

    Decided by resolving, not by reading text: each key is given its own value and then
    another one, and every interpolation under `under` is resolved with both; one whose value
    changes, or that fails with one value only, reads the key. A string that merely mentions a
    key (`return_sequences`, or an escaped `\\${return_sequences}`) is not an interpolation, or
    resolves the same both times.

    `memo`: a ProbeMemo; `written`: the config as `written_of` gives it, when at hand."""
    def read(sentinels: tuple) -> set:
        return {key for key, own, other in _probed(cfg, keys, under, sentinels) if own != other}

    if memo is None or not keys:
        return read(())
    return memo.answer(("read", under, tuple(keys)), written or written_of(cfg), keys, read)


def keys_needed(cfg: DictConfig, keys, memo: "Optional[ProbeMemo]" = None,
                written: Optional[dict] = None) -> set:
    """The keys among `keys` (each unset, `???`) without which an interpolation anywhere fails
    that resolves once they have a value."""
    def needed(sentinels: tuple) -> set:
        return {key for key, own, other in _probed(cfg, keys, "", sentinels)
                if any(isinstance(a, _Failed) and not isinstance(b, _Failed)
                       for a, b in zip(own, other))}

    if memo is None or not keys:
        return needed(())
    return memo.answer(("needed", tuple(keys)), written or written_of(cfg), keys, needed)


def written_of(cfg: DictConfig) -> dict:
    """The config as written, interpolations unresolved, as the probes read it."""
    return OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)


class ProbeMemo:
    """keys_read and keys_needed of configs that differ from each other only at the `varying`
    keys (the cells of a grid that share their config-group choices), each answer kept with
    the values it depended on: a config with the same values there gets the same answer.

    Exact, because an answer depends only on what its resolving read. An answer is worked out
    with each varying key that holds a plain value (a number, a boolean, a string that is no
    interpolation) read through a resolver that gives that value and notes the read; and with
    Hydra's `hydra` resolver noting the paths it is asked for. The answer then depends on the
    varying keys probed (`keys`), those that hold anything else, those read, and, where Hydra's
    resolver was asked for them, the two values Hydra writes for each cell
    (`hydra.overrides.task`, `hydra.job.override_dirname`). Resolvers are taken to answer the
    same for the same arguments, as OmegaConf's and the runner's do."""

    def __init__(self, varying: Sequence[str]) -> None:
        self.varying = tuple(dict.fromkeys(varying))
        self._answers: dict = {}  # question -> [(((key, value), ...), answer)]

    def answer(self, question: tuple, written: dict, keys, work_out) -> set:
        """The answer to `question` of a config (`written`: as `written_of` gives it), kept
        or worked out by `work_out(sentinels)`."""
        values = {key: _spelled(value_at(written, key)) for key in self.varying}
        for depends, answer in self._answers.get(question, ()):
            if any(key in HYDRA_PER_CELL for key, _ in depends) and HYDRA_PER_CELL[0] not in values:
                values.update(_hydra_values())
            if all(values[key] == value for key, value in depends):
                return set(answer)
        sentinels = tuple(key for key in self.varying
                          if key not in keys and _plain(value_at(written, key)))
        global _RECORDING
        _register_recorders()
        _RECORDING = _Reads([value_at(written, key) for key in sentinels])
        try:
            answer = work_out(sentinels)
            reads = _RECORDING
        finally:
            _RECORDING = None
        depends = [key for index, key in enumerate(sentinels) if index in reads.keys]
        depends += [key for key in self.varying if key not in sentinels]
        depends += [field for field in HYDRA_PER_CELL
                    if any(related(path, field) for path in reads.hydra_paths)]
        if any(key in HYDRA_PER_CELL for key in depends):
            values.update(_hydra_values())
        self._answers.setdefault(question, []).append(
            (tuple((key, values[key]) for key in depends), frozenset(answer)))
        return set(answer)


# What Hydra writes differently for each cell of a grid that shares its config-group choices,
# as `${hydra:...}` names it
HYDRA_PER_CELL = ("overrides.task", "job.override_dirname")
_READ = "runner_probe_read"  # the resolver a varying key is read through while an answer is worked out


@dataclass
class _Reads:
    """What working out one answer read: the varying keys' values (by index), the indices read,
    the paths Hydra's resolver was asked for."""
    values: list
    keys: set = None
    hydra_paths: set = None

    def __post_init__(self) -> None:
        self.keys, self.hydra_paths = set(), set()


_RECORDING: Optional[_Reads] = None
_HYDRA_READS: list = []  # a set of paths for each `hydra_reads()` open


@contextmanager
def hydra_reads():
    """The paths Hydra's `hydra` resolver is asked for while inside (`${hydra:runtime.cwd}`:
    `runtime.cwd`), as a set filled as they are read."""
    paths: set = set()
    _register_recorders()
    _HYDRA_READS.append(paths)
    try:
        yield paths
    finally:
        _HYDRA_READS.remove(paths)


def _read_value(index: int):
    _RECORDING.keys.add(index)
    return _RECORDING.values[index]


def _hydra(path: str):
    """Hydra's `hydra` resolver, as hydra.core.utils.setup_globals registers it, noting the path."""
    from hydra.core.hydra_config import HydraConfig

    if _RECORDING is not None:
        _RECORDING.hydra_paths.add(path)
    for paths in _HYDRA_READS:
        paths.add(path)
    return OmegaConf.select(HydraConfig.get(), path)


def _register_recorders() -> None:
    if not OmegaConf.has_resolver(_READ):
        OmegaConf.register_new_resolver(_READ, _read_value)
    OmegaConf.register_new_resolver("hydra", _hydra, replace=True)  # Hydra's own may be back


def _hydra_values() -> dict:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return dict.fromkeys(HYDRA_PER_CELL, "")
    hydra = HydraConfig.get()
    return {field: _spelled(_hydra_field(hydra, field)) for field in HYDRA_PER_CELL}


def _hydra_field(hydra, field: str):
    node = OmegaConf.select(hydra, field)
    return OmegaConf.to_container(node) if OmegaConf.is_config(node) else node


def related(path: str, field: str) -> bool:
    """Whether reading `path` reads `field`, or a part of it, or the node that holds it."""
    path = path.strip(".")
    return not path or field == path or field.startswith(path + ".") or path.startswith(field + ".")


def value_at(container, key: str):
    """A dotted key's value (list items by index) in a plain container, or _ABSENT."""
    for part in key.split("."):
        if isinstance(container, dict) and part in container:
            container = container[part]
        elif isinstance(container, list) and part.isdigit() and int(part) < len(container):
            container = container[int(part)]
        else:
            return _ABSENT
    return container


def _plain(value) -> bool:
    """A value a resolver can give in its place, exactly: no interpolation, not unset."""
    if isinstance(value, str):
        return "${" not in value and value != "???"
    return value is None or isinstance(value, (bool, int, float))


def _spelled(value) -> str:
    """A value, told apart from any other (1 from 1.0 and from True), for comparing."""
    return "absent" if value is _ABSENT else repr(value)


@dataclass(frozen=True)
class _Failed:
    """What resolving an interpolation gave when it raised: the kind of error."""
    error: type


def _probed(cfg: DictConfig, keys, under: str, sentinels: tuple = ()):
    """(key, what every interpolation under `under` resolves to with the key's own value,
    the same with another value) for each of `keys` the config has. The config is copied
    untyped, so that a key can take a value of any type; each of `sentinels` (keys) is read
    through ProbeMemo's resolver, which gives its value."""
    if not keys:
        return
    written = OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)
    probe = OmegaConf.create(written)
    for index, key in enumerate(sentinels):
        OmegaConf.update(probe, key, f"${{{_READ}:{index}}}", merge=False)
    scope = OmegaConf.select(probe, under) if under else probe
    if not OmegaConf.is_config(scope):
        return
    interpolations = [found for found in _interpolations(scope, under)
                      if found[0] not in sentinels]
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
