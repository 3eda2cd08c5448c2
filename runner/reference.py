"""An independent NumPy forward pass: the equations, fed with the built model's own weights.

Written from the cell equations, not from Keras's code, in float64, so agreement with Keras
within the run's tolerance says the numbers (not only the shapes) are what the equations say.
"""

import numpy as np

from runner import vocabulary
from runner.shapes import FLOWING, StackPlan


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


_EQUATIONS = {
    "linear": lambda x: x,
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "relu": lambda x: np.maximum(x, 0.0),
    "hard_sigmoid": lambda x: np.clip((x + 3.0) / 6.0, 0.0, 1.0),
    "softsign": lambda x: x / (1.0 + np.abs(x)),
}
# Every activation a config may name, and no other: a name missing here fails at import
ACTIVATIONS = {None: _EQUATIONS["linear"],
               **{name: _EQUATIONS[name] for name in vocabulary.ACTIVATIONS}}


def _recurrent(kind: str, cfg: dict, weights: list, x: np.ndarray) -> list:
    """[output, *final states] of SimpleRNN (h), LSTM (h, c) or GRU (h) over x (B, T, D)."""
    units = cfg["units"]
    act = ACTIVATIONS[cfg.get("activation", "tanh")]
    gate = ACTIVATIONS[cfg.get("recurrent_activation", "sigmoid")]
    use_bias = cfg.get("use_bias", True)
    reset_after = cfg.get("reset_after", True)
    kernel, recurrent = weights[0], weights[1]
    bias = weights[2] if use_bias else np.zeros((2, 3 * units) if kind == "GRU" and reset_after
                                                else kernel.shape[1])
    batch, timesteps, _ = x.shape
    h = np.zeros((batch, units))
    c = np.zeros((batch, units))
    steps = range(timesteps - 1, -1, -1) if cfg.get("go_backwards", False) else range(timesteps)
    sequence = []
    for t in steps:
        x_t = x[:, t]
        if kind == "SimpleRNN":
            h = act(x_t @ kernel + h @ recurrent + bias)
        elif kind == "LSTM":
            i, f, g, o = np.split(x_t @ kernel + h @ recurrent + bias, 4, axis=-1)
            c = gate(f) * c + gate(i) * act(g)
            h = gate(o) * act(c)
        elif reset_after:  # GRU, Keras's default: the reset gate applies after the matmul
            x_z, x_r, x_h = np.split(x_t @ kernel + bias[0], 3, axis=-1)
            h_z, h_r, h_h = np.split(h @ recurrent + bias[1], 3, axis=-1)
            z, r = gate(x_z + h_z), gate(x_r + h_r)
            h = z * h + (1.0 - z) * act(x_h + r * h_h)
        else:  # GRU, original formulation: the reset gate applies before the matmul
            x_z, x_r, x_h = np.split(x_t @ kernel + bias, 3, axis=-1)
            u_z, u_r, u_h = np.split(recurrent, 3, axis=-1)
            z, r = gate(x_z + h @ u_z), gate(x_r + h @ u_r)
            h = z * h + (1.0 - z) * act(x_h + (r * h) @ u_h)
        sequence.append(h)
    output = np.stack(sequence, axis=1) if cfg.get("return_sequences", False) else h
    if not cfg.get("return_state", False):
        return [output]
    return [output, h, c] if kind == "LSTM" else [output, h]


def _bidirectional(cfg: dict, weights: list, x: np.ndarray) -> list:
    inner = cfg["layer"]
    kind = inner["_target_"].rsplit(".", 1)[1]
    half = len(weights) // 2
    forward = _recurrent(kind, inner, weights[:half], x)
    backward_cfg = {**inner, "go_backwards": True}
    backward = _recurrent(kind, backward_cfg, weights[half:], x)
    y, y_rev = forward[0], backward[0]
    if inner.get("return_sequences", False):
        y_rev = y_rev[:, ::-1]  # back to input time order before merging
    merge_mode = cfg.get("merge_mode", "concat")
    merged = {
        "concat": lambda: [np.concatenate([y, y_rev], axis=-1)],
        "sum": lambda: [y + y_rev],
        "mul": lambda: [y * y_rev],
        "ave": lambda: [(y + y_rev) / 2.0],
        "none": lambda: [y, y_rev],
        None: lambda: [y, y_rev],
    }[merge_mode]()
    return merged + forward[1:] + backward[1:]


def _dense(cfg: dict, weights: list, x: np.ndarray) -> list:
    y = x @ weights[0] + (weights[1] if cfg.get("use_bias", True) else 0.0)
    return [ACTIVATIONS[cfg.get("activation")](y)]


def _lambda(cfg: dict, weights: list, x: np.ndarray) -> list:
    if cfg["function"] == "expand_last_axis":
        return [x[..., np.newaxis]]
    return [x * cfg["arguments"]["factor"]]  # scale


_FORWARD = {
    "SimpleRNN": lambda cfg, w, x: _recurrent("SimpleRNN", cfg, w, x),
    "LSTM": lambda cfg, w, x: _recurrent("LSTM", cfg, w, x),
    "GRU": lambda cfg, w, x: _recurrent("GRU", cfg, w, x),
    "Bidirectional": _bidirectional,
    "Dense": _dense,
    "Lambda": _lambda,
    "Dropout": lambda cfg, w, x: [x],  # identity at inference
}


def reference_outputs(layers: list, plan: StackPlan, weights: list, inputs: np.ndarray) -> dict:
    """The model's named outputs computed in float64 from `weights` (one list per layer)."""
    flowing = {"output": inputs.astype(np.float64)}
    states = {}
    for cfg, layer_plan, layer_weights in zip(layers, plan.layers, weights):
        kind = cfg["_target_"].rsplit(".", 1)[1]
        results = _FORWARD[kind](cfg, [np.asarray(w, np.float64) for w in layer_weights],
                                 flowing["output"])
        named = dict(zip(layer_plan.outputs, results))
        states.update({k: v for k, v in named.items() if k not in FLOWING})
        flowing = {k: v for k, v in named.items() if k in FLOWING}
    return {**flowing, **states}


def max_abs_err(actual: dict, expected: dict) -> float:
    """Largest |actual - expected| / max(1, |expected|) over every output."""
    worst = 0.0
    for name, want in expected.items():
        got = np.asarray(actual[name], np.float64)
        if got.shape != want.shape:
            return float("inf")
        if want.size:
            worst = max(worst, float(np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want)))))
    return worst
