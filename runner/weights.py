"""Weights drawn in NumPy from the job's seed, the same on every Keras backend.

Each backend's own initializers draw other numbers from the same seed; these depend only on the
seed, the layer's place in the config and the weight's place and shape in the layer, so a cell's
runs on TensorFlow, JAX and PyTorch compute the same function. The families are Keras's
defaults, except that biases and BatchNormalization's beta are drawn near zero instead of set
to it (and its gamma near one), so the reference checks every term of the equations."""

import numpy as np

# The config key that names each trainable weight's initializer, by the weight's Keras name
INITIALIZER_KEYS = {"kernel": "kernel_initializer", "recurrent_kernel": "recurrent_initializer",
                    "bias": "bias_initializer", "embeddings": "embeddings_initializer",
                    "gamma": "gamma_initializer", "beta": "beta_initializer"}
# SeedSequence spawn keys (_WEIGHTS, layer index, weight index) give each weight a stream of
# its own; runner.data draws the inputs from the root sequence, which no child's draws disturb
_WEIGHTS = 1
BIAS_LIMIT = 0.1  # biases, beta and gamma - 1 are uniform in [-0.1, 0.1)
EMBEDDINGS_LIMIT = 0.05  # Keras's own Embedding default, RandomUniform(-0.05, 0.05)


def draw_weights(built: dict, layers: list, seed: int) -> None:
    """Set every trainable weight of the built layers ({index: Keras layer}, as build_model
    returns them) to one drawn from `seed`, except those whose initializer the config names:
    those keep what that initializer gave. Non-trainable weights (BatchNormalization's moving
    statistics) keep Keras's constants."""
    for index, layer in built.items():
        named = {id(variable) for cfg, owner in _owners(layers[index], layer)
                 for variable in owner.weights if INITIALIZER_KEYS.get(variable.name) in cfg}
        values = layer.get_weights()
        for position, variable in enumerate(layer.weights):
            if variable.trainable and id(variable) not in named:
                sequence = np.random.SeedSequence(seed, spawn_key=(_WEIGHTS, index, position))
                values[position] = draw_weight(variable.name, tuple(variable.shape),
                                               np.random.default_rng(sequence), variable.path)
        layer.set_weights(values)


def undrawn(cfg: dict) -> dict:
    """A layer's config to build it with: `zeros` for each trainable weight's initializer the
    config does not name, since draw_weights replaces what it gives. Keras's own random and
    orthogonal initializers cost a JAX process about 1.5 s on its first stack (each compiles;
    measured for a Bidirectional LSTM, GRU and Dense), only to be overwritten."""
    import inspect

    from hydra.utils import get_class

    nested = {key: ([undrawn(item) for item in cfg[key]] if isinstance(cfg[key], list)
                    else undrawn(cfg[key]))
              for key in ("layer", "cell") if isinstance(cfg.get(key), (dict, list))}
    takes = inspect.signature(get_class(cfg["_target_"])).parameters
    zeros = {key: "zeros" for key in INITIALIZER_KEYS.values() if key in takes and key not in cfg}
    return {**cfg, **nested, **zeros}


def draw_weight(name: str, shape: tuple, rng: np.random.Generator, path: str = "") -> np.ndarray:
    """One weight of Keras's name `name`, as float32: Glorot-uniform kernels, orthogonal
    recurrent kernels, small uniform embeddings and biases, gamma near one."""
    if name == "kernel":
        fan_in, fan_out = _fans(shape)
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        values = rng.uniform(-limit, limit, shape)
    elif name == "recurrent_kernel":
        values = _orthogonal(shape, rng)
    elif name == "embeddings":
        values = rng.uniform(-EMBEDDINGS_LIMIT, EMBEDDINGS_LIMIT, shape)
    elif name in ("bias", "beta"):
        values = rng.uniform(-BIAS_LIMIT, BIAS_LIMIT, shape)
    elif name == "gamma":
        values = 1.0 + rng.uniform(-BIAS_LIMIT, BIAS_LIMIT, shape)
    else:
        raise ValueError(f"{path or name}: no NumPy draw for a trainable weight named {name!r} "
                         f"(known: {', '.join(INITIALIZER_KEYS)})")
    return values.astype("float32")


def _fans(shape: tuple) -> tuple:
    """(fan_in, fan_out) as keras.initializers.GlorotUniform counts them: a Conv1D kernel
    (kernel_size, in, out) counts each of its kernel_size taps."""
    receptive_field = int(np.prod(shape[:-2]))
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def _orthogonal(shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """keras.initializers.Orthogonal's matrix: orthonormal rows or columns, whichever are fewer."""
    rows, columns = int(np.prod(shape[:-1])), shape[-1]
    q, r = np.linalg.qr(rng.standard_normal((max(rows, columns), min(rows, columns))))
    q *= np.sign(np.diag(r))  # a unique Q: R's diagonal made positive
    return (q.T if rows < columns else q).reshape(shape)


def _owners(cfg: dict, layer) -> list:
    """[(config, the Keras layer or cell that holds its weights)]: a wrapper's inner layer, the
    cell of a recurrent layer, each cell of a stack of cells."""
    kind = cfg["_target_"].rsplit(".", 1)[1]
    if kind == "Bidirectional":
        return [*_owners(cfg["layer"], layer.forward_layer),
                *_owners(cfg["layer"], layer.backward_layer)]
    if kind == "TimeDistributed":
        return _owners(cfg["layer"], layer.layer)
    if kind == "RNN" and isinstance(cfg["cell"], list):
        return list(zip(cfg["cell"], layer.cell.cells))
    if kind in ("RNN", "SimpleRNN", "LSTM", "GRU"):
        return [(cfg.get("cell", cfg), layer.cell)]
    return [(cfg, layer)]
