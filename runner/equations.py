"""The equations, in float64 NumPy: activations, recurrent cells, and the layers around them.

Written from the published definitions, not from Keras's code, so agreement with Keras says
the numbers are what the equations say."""

import math

import numpy as np

from runner import vocabulary


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softplus(x):
    return np.logaddexp(0.0, x)


def _softmax(x):
    shifted = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return shifted / np.sum(shifted, axis=-1, keepdims=True)


def _sparsemax(x):
    """Martins and Astudillo (2016): the projection of x onto the probability simplex."""
    ordered = -np.sort(-x, axis=-1)
    cumulative = np.cumsum(ordered, axis=-1)
    k = np.arange(1, x.shape[-1] + 1)
    support = 1 + k * ordered > cumulative
    size = np.sum(support, axis=-1, keepdims=True)
    tau = (np.take_along_axis(cumulative, size - 1, axis=-1) - 1) / size
    return np.maximum(x - tau, 0.0)


_ERF = np.vectorize(math.erf)
_SELU = (1.6732632423543772, 1.0507009873554805)  # alpha, scale (Klambauer et al., 2017)

_DEFINITIONS = {
    "linear": lambda x: x,
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "relu": lambda x: np.maximum(x, 0.0),
    "relu6": lambda x: np.clip(x, 0.0, 6.0),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),
    "hard_sigmoid": lambda x: np.clip((x + 3.0) / 6.0, 0.0, 1.0),
    "hard_silu": lambda x: x * np.clip((x + 3.0) / 6.0, 0.0, 1.0),
    "hard_swish": lambda x: x * np.clip((x + 3.0) / 6.0, 0.0, 1.0),
    "hard_tanh": lambda x: np.clip(x, -1.0, 1.0),
    "hard_shrink": lambda x: np.where(np.abs(x) > 0.5, x, 0.0),
    "soft_shrink": lambda x: np.where(x > 0.5, x - 0.5, np.where(x < -0.5, x + 0.5, 0.0)),
    "tanh_shrink": lambda x: x - np.tanh(x),
    "softsign": lambda x: x / (1.0 + np.abs(x)),
    "softplus": _softplus,
    "sparse_plus": lambda x: np.where(x <= -1, 0.0, np.where(x >= 1, x, (x + 1) ** 2 / 4)),
    "sparse_sigmoid": lambda x: np.clip((x + 1.0) / 2.0, 0.0, 1.0),
    "squareplus": lambda x: (x + np.sqrt(x * x + 4.0)) / 2.0,
    "silu": lambda x: x * _sigmoid(x),
    "swish": lambda x: x * _sigmoid(x),
    "mish": lambda x: x * np.tanh(_softplus(x)),
    "gelu": lambda x: 0.5 * x * (1.0 + _ERF(x / math.sqrt(2.0))),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "celu": lambda x: np.maximum(x, 0.0) + np.minimum(0.0, np.expm1(np.minimum(x, 0.0))),
    "selu": lambda x: _SELU[1] * np.where(x > 0, x, _SELU[0] * np.expm1(np.minimum(x, 0.0))),
    "exponential": np.exp,
    "log_sigmoid": lambda x: -_softplus(-x),
    "softmax": _softmax,
    "log_softmax": lambda x: x - np.max(x, axis=-1, keepdims=True) - np.log(
        np.sum(np.exp(x - np.max(x, axis=-1, keepdims=True)), axis=-1, keepdims=True)),
    "sparsemax": _sparsemax,
    "glu": lambda x: np.split(x, 2, axis=-1)[0] * _sigmoid(np.split(x, 2, axis=-1)[1]),
}
# Every activation a config may name, and no other: a name missing here fails at import
ACTIVATIONS = {None: _DEFINITIONS["linear"],
               **{name: _DEFINITIONS[name] for name in vocabulary.ACTIVATIONS}}


def cell_step(kind: str, cfg: dict, weights: list, x_t, states: list) -> tuple:
    """One timestep of a SimpleRNN, LSTM or GRU cell: (output, new states)."""
    act = ACTIVATIONS[cfg.get("activation", "tanh")]
    gate = ACTIVATIONS[cfg.get("recurrent_activation", "sigmoid")]
    kernel, recurrent = weights[0], weights[1]
    bias = weights[2] if cfg.get("use_bias", True) else None
    h = states[0]
    if kind == "SimpleRNN":
        h = act(x_t @ kernel + h @ recurrent + (0.0 if bias is None else bias))
        return h, [h]
    if kind == "LSTM":
        z = x_t @ kernel + h @ recurrent + (0.0 if bias is None else bias)
        i, f, g, o = np.split(z, 4, axis=-1)
        c = gate(f) * states[1] + gate(i) * act(g)
        h = gate(o) * act(c)
        return h, [h, c]
    if cfg.get("reset_after", True):  # GRU, Keras's default: the reset gate after the matmul
        b_in, b_rec = (0.0, 0.0) if bias is None else (bias[0], bias[1])
        x_z, x_r, x_h = np.split(x_t @ kernel + b_in, 3, axis=-1)
        h_z, h_r, h_h = np.split(h @ recurrent + b_rec, 3, axis=-1)
        z, r = gate(x_z + h_z), gate(x_r + h_r)
        h = z * h + (1.0 - z) * act(x_h + r * h_h)
    else:  # GRU, original formulation: the reset gate before the matmul
        x_z, x_r, x_h = np.split(x_t @ kernel + (0.0 if bias is None else bias), 3, axis=-1)
        u_z, u_r, u_h = np.split(recurrent, 3, axis=-1)
        z, r = gate(x_z + h @ u_z), gate(x_r + h @ u_r)
        h = z * h + (1.0 - z) * act(x_h + (r * h) @ u_h)
    return h, [h]


def dense(cfg: dict, weights: list, x):
    y = x @ weights[0] + (weights[1] if cfg.get("use_bias", True) else 0.0)
    return ACTIVATIONS[cfg.get("activation")](y)


def embedding(weights: list, ids):
    return weights[0][ids.astype(np.int64)]


def batch_normalization(cfg: dict, weights: list, x):
    """Inference: the moving statistics, then gamma and beta where the layer has them."""
    weights = list(weights)
    gamma = weights.pop(0) if cfg.get("scale", True) else 1.0
    beta = weights.pop(0) if cfg.get("center", True) else 0.0
    mean, variance = weights
    return (x - mean) / np.sqrt(variance + cfg.get("epsilon", 1e-3)) * gamma + beta


def conv1d(cfg: dict, weights: list, x):
    """(batch, timesteps, channels) -> (batch, length, filters), padding as TensorFlow pads."""
    kernel = weights[0]
    size, dilation = kernel.shape[0], cfg.get("dilation_rate", 1)
    strides, padding = cfg.get("strides", 1), cfg.get("padding", "valid")
    span = (size - 1) * dilation + 1
    timesteps = x.shape[1]
    if padding == "causal":
        x = np.pad(x, ((0, 0), (span - 1, 0), (0, 0)))
    elif padding == "same":
        length = -(-timesteps // strides)
        total = max((length - 1) * strides + span - timesteps, 0)
        x = np.pad(x, ((0, 0), (total // 2, total - total // 2), (0, 0)))
    length = (x.shape[1] - span) // strides + 1
    y = np.zeros((x.shape[0], length, kernel.shape[2]))
    for step in range(length):
        window = x[:, step * strides: step * strides + span: dilation]  # (batch, size, channels)
        y[:, step] = np.einsum("bkc,kcf->bf", window, kernel)
    if cfg.get("use_bias", True):
        y = y + weights[1]
    return ACTIVATIONS[cfg.get("activation")](y)


def masking(cfg: dict, x) -> tuple:
    """(x with masked steps zeroed, the mask): a step is masked when all its values equal
    mask_value."""
    mask = np.any(x != cfg.get("mask_value", 0.0), axis=-1)
    return x * mask[..., np.newaxis], mask
