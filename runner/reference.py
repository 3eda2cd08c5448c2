"""An independent NumPy forward pass: the equations (runner/equations.py), fed with the built
model's own weights, in float64, through the model's graph.

Keras's mask semantics are followed exactly: an Embedding with mask_zero masks token 0, a
Masking layer the steps whose values all equal its mask_value; a recurrent layer keeps its
states over a masked step and outputs the step before's output again (zeros before the first;
zeros throughout with zero_output_for_mask, which Bidirectional sets when it returns
sequences), and passes the mask on only with return_sequences; Dense, TimeDistributed, Dropout and
BatchNormalization pass it on; Conv1D and Lambda drop it. A layer started from another's
states (`initial_state`) is given no mask by Keras, though its output is marked with the one it
read. A stateful layer starts each batch from the states the batch before ended with.
"""

import numpy as np

from runner import equations
from runner.shape_rules import FLOWING, STATES
from runner.shapes import StackPlan


def reference_outputs(layers: list, plan: StackPlan, weights: dict, batches: list) -> list:
    """The model's named outputs for each batch of inputs ({input name: array}), computed in
    float64 from `weights` ({layer index: the layer's get_weights()})."""
    weights = {i: [np.asarray(w, np.float64) for w in ws] for i, ws in weights.items()}
    carried = {}  # layer index -> the states a stateful layer ended its last batch with
    results = []
    for batch in batches:
        values = {name: (np.asarray(array), None) for name, array in batch.items()}
        named = {}
        for layer_plan in plan.layers:
            cfg = layers[layer_plan.index]
            x, mask = values[layer_plan.source]
            start = None
            if layer_plan.initial_state is not None:
                start = [v for k, v in named[layer_plan.initial_state].items() if k not in FLOWING]
            elif layer_plan.index in carried:
                start = carried[layer_plan.index]
            if layer_plan.initial_state is not None:
                # Keras passes no mask to a layer called with a second tensor (it looks for a
                # `sequences_mask` argument), yet marks its output with the mask it read
                outputs, _, final = _layer(cfg, weights[layer_plan.index], x, None, start)
                out_mask = mask if "output" in layer_plan.masked else None
            else:
                outputs, out_mask, final = _layer(cfg, weights[layer_plan.index], x, mask, start)
            if layer_plan.stateful:
                carried[layer_plan.index] = final
            named[layer_plan.index] = dict(zip(layer_plan.outputs, outputs))
            if "output" in named[layer_plan.index]:
                values[f"model.layers.{layer_plan.index}"] = (named[layer_plan.index]["output"],
                                                              out_mask)
        results.append({name: named[plan.last if name in FLOWING else plan.holder][name]
                        for name in plan.outputs})
    return results


def apply_layer(cfg: dict, weights: list, x, mask=None, initial_state=None) -> tuple:
    """One layer on its own: ([results in Keras's order], the mask its output carries, the
    final states a stateful layer carries on)."""
    weights = [np.asarray(w, np.float64) for w in weights]
    mask = None if mask is None else np.asarray(mask, bool)
    start = None if initial_state is None else [np.asarray(s, np.float64) for s in initial_state]
    return _layer(cfg, weights, np.asarray(x), mask, start)


def _layer(cfg: dict, weights: list, x, mask, start) -> tuple:
    """([results in Keras's order], the mask its flowing output carries, final states)."""
    kind = cfg["_target_"].rsplit(".", 1)[1]
    if kind in ("SimpleRNN", "LSTM", "GRU"):
        return _recurrent([(kind, cfg)], cfg, weights, x, mask, start)
    if kind == "RNN":
        cells = cfg["cell"] if isinstance(cfg["cell"], list) else [cfg["cell"]]
        return _recurrent([(c["_target_"].rsplit(".", 1)[1][:-4], c) for c in cells], cfg,
                          weights, x, mask, start, stacked=isinstance(cfg["cell"], list))
    if kind == "Bidirectional":
        return _bidirectional(cfg, weights, x, mask, start)
    if kind == "Dense":
        return [equations.dense(cfg, weights, x.astype(np.float64))], mask, None
    if kind == "TimeDistributed":
        return [equations.dense(cfg["layer"], weights, x.astype(np.float64))], mask, None
    if kind == "Embedding":
        masked = x != 0 if cfg.get("mask_zero", False) else None
        return [equations.embedding(weights, x)], masked, None
    if kind == "Masking":
        y, masked = equations.masking(cfg, x.astype(np.float64))
        return [y], masked, None
    if kind == "BatchNormalization":
        return [equations.batch_normalization(cfg, weights, x.astype(np.float64))], mask, None
    if kind == "Conv1D":
        return [equations.conv1d(cfg, weights, x.astype(np.float64))], None, None
    if kind == "Lambda":
        x = x.astype(np.float64)
        if cfg["function"] == "expand_last_axis":
            return [x[..., np.newaxis]], None, None
        return [x * cfg["arguments"]["factor"]], None, None  # scale
    return [x.astype(np.float64)], mask, None  # Dropout: the identity at inference


def _recurrent(cells: list, cfg: dict, weights: list, x, mask, start, stacked=False) -> tuple:
    """A recurrent layer over (batch, timesteps, features): one cell, or cells run one above the
    other at each step. Returns ([output, *final states], output mask, final states)."""
    x = x.astype(np.float64)
    batch, timesteps = x.shape[:2]
    per_cell, offset = [], 0
    for kind, cell in cells:
        count = 3 if cell.get("use_bias", True) else 2
        per_cell.append(weights[offset: offset + count])
        offset += count
    sizes = [w[1].shape[0] for w in per_cell]
    counts = [len(STATES[kind]) for kind, _ in cells]
    flat = list(start) if start is not None else [np.zeros((batch, units))
                                                  for units, n in zip(sizes, counts)
                                                  for _ in range(n)]
    states, at = [], 0
    for n in counts:
        states.append([np.asarray(s, np.float64) for s in flat[at: at + n]])
        at += n
    zero_masked = cfg.get("zero_output_for_mask", False)
    previous = np.zeros((batch, sizes[-1]))
    steps = range(timesteps - 1, -1, -1) if cfg.get("go_backwards", False) else range(timesteps)
    sequence = []
    for t in steps:
        value, new_states = x[:, t], []
        for (kind, cell), cell_weights, cell_states in zip(cells, per_cell, states):
            value, updated = equations.cell_step(kind, cell, cell_weights, value, cell_states)
            new_states.append(updated)
        if mask is not None:
            keep = mask[:, t][:, np.newaxis]
            value = np.where(keep, value, 0.0 if zero_masked else previous)
            new_states = [[np.where(keep, new, old) for new, old in zip(n, o)]
                          for n, o in zip(new_states, states)]
        states, previous = new_states, value
        sequence.append(value)
    sequences = cfg.get("return_sequences", False)
    output = np.stack(sequence, axis=1) if sequences else sequence[-1]
    final = [s for cell_states in states for s in cell_states]
    results = [output, *final] if cfg.get("return_state", False) else [output]
    return results, mask if sequences else None, final


def _bidirectional(cfg: dict, weights: list, x, mask, start=None) -> tuple:
    inner = cfg["layer"]
    kind = inner["_target_"].rsplit(".", 1)[1]
    half = len(weights) // 2
    sequences = inner.get("return_sequences", False)
    if sequences:  # Bidirectional makes both directions output zeros at masked steps
        inner = {**inner, "zero_output_for_mask": True}
    starts = (None, None) if start is None else (start[:len(start) // 2],
                                                  start[len(start) // 2:])  # forward, backward
    forward, _, _ = _recurrent([(kind, inner)], inner, weights[:half], x, mask, starts[0])
    backward, _, _ = _recurrent([(kind, inner)], {**inner, "go_backwards": True},
                                weights[half:], x, mask, starts[1])
    y, y_rev = forward[0], backward[0]
    if sequences:
        y_rev = y_rev[:, ::-1]  # back to input time order before merging
    merged = {
        "concat": lambda: [np.concatenate([y, y_rev], axis=-1)],
        "sum": lambda: [y + y_rev],
        "mul": lambda: [y * y_rev],
        "ave": lambda: [(y + y_rev) / 2.0],
        "none": lambda: [y, y_rev],
        None: lambda: [y, y_rev],
    }[cfg.get("merge_mode", "concat")]()
    return merged + forward[1:] + backward[1:], mask if sequences else None, None


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
