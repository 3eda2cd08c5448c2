"""A closed door on what config may instantiate: Hydra 1.3 has no allowlist of its own."""

from omegaconf import DictConfig, ListConfig, OmegaConf

from runner.shapes import SUPPORTED_TARGETS, ConfigError


def walk(node, key: str):
    """(dotted key, leaf value) for every leaf of nested dicts and lists."""
    if isinstance(node, (DictConfig, dict)):
        items = node.items_ex(resolve=False) if isinstance(node, DictConfig) else node.items()
        for child_key, child in items:
            yield from walk(child, f"{key}.{child_key}" if key else str(child_key))
    elif isinstance(node, (ListConfig, list)):
        for index, child in enumerate(node):
            yield from walk(child, f"{key}.{index}")
    else:
        yield key, node


def check_targets(cfg) -> None:
    """Refuse any `_target_` (nested ones too) that is not one of the supported Keras layers."""
    container = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    for key, value in walk(container, ""):
        if key.rsplit(".", 1)[-1] == "_target_" and value not in SUPPORTED_TARGETS:
            allowed = ", ".join(SUPPORTED_TARGETS)
            raise ConfigError(f"{key}: {value!r} may not be instantiated; allowed: {allowed}")
