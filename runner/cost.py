"""What a job will cost, from the oracle's shapes alone: mult-adds per prediction, and the bytes
of weights, outputs, inputs and the NumPy reference's copies. Pure Python, like the oracle.

A mult-add is one multiplication added to a sum (a matrix product of (m, k) by (k, n) costs
m * k * n of them); additions of a bias and elementwise activations are not counted. The
formulas are those of `layer_mult_adds`; tests/test_cost.py checks them against counts made
by hand, and every run compares the weights' bytes with Keras's own.
"""

import math
from dataclasses import dataclass
from typing import Optional

from runner.shape_rules import GATES, class_name
from runner.shapes import StackPlan

WEIGHT_BYTES = 4  # Keras keeps variables in float32 under every precision policy
COMPUTE_BYTES = {"float32": 4, "mixed_float16": 2, "mixed_bfloat16": 2}  # outputs' dtype
DRAWN_BYTES = 8  # NumPy draws the inputs in float64 (or int64) before casting them to 32 bits
REFERENCE_BYTES = 8  # the NumPy reference computes in float64
# A job whose predictions add up to more mult-adds than this starts with a line saying so. The
# speed sweep's cells measured 8.7e9 to 2.0e10 mult-adds/s on 2 CPU cores (benchmarks/RESULTS.md):
# 1e12 is about 100 s at the rate below, 50-115 s at those; the default job is 8e4.
LONG_MULT_ADDS = 10**12
MEASURED_RATE = 1e10  # mult-adds per second of a recurrent stack on 2 CPU cores (RESULTS.md)


@dataclass(frozen=True)
class LayerCost:
    """One layer's cost for one prediction of the whole batch."""
    index: int
    mult_adds: int
    weight_bytes: int
    output_bytes: int  # every output it returns, states included, at the run's precision


@dataclass(frozen=True)
class JobCost:
    """A job's cost: per layer, and the parts of its memory estimate, in bytes."""
    layers: tuple  # of LayerCost, in the plan's order
    calls: int  # predictions the job makes: its batches, then warm-up and timed calls
    batches: int  # consecutive batches of inputs
    weight_bytes: int
    input_bytes: int  # every batch's inputs, kept for the whole job
    drawn_bytes: int  # one input as NumPy draws it, before the cast to 32 bits
    activation_bytes: int  # every layer's outputs during one prediction
    recurrent_bytes: int  # TensorFlow's time-major copies inside the recurrent layers
    prediction_bytes: int  # the model's outputs, kept for every batch
    reference_bytes: int  # the NumPy reference's float64 copies of weights, inputs and outputs

    @property
    def mult_adds(self) -> int:
        """Mult-adds of one prediction of one batch."""
        return sum(layer.mult_adds for layer in self.layers)

    @property
    def total_mult_adds(self) -> int:
        """Mult-adds of every prediction the job makes."""
        return self.mult_adds * self.calls

    @property
    def memory_bytes(self) -> int:
        """The job's estimated peak: everything it keeps, plus the drawing of one input."""
        return (self.weight_bytes + self.input_bytes + self.drawn_bytes + self.activation_bytes
                + self.recurrent_bytes + self.prediction_bytes + self.reference_bytes)


def _elements(shape) -> int:
    return math.prod(shape)


def _positions(shape) -> int:
    """Vectors a layer on the last axis is applied to: batch (x timesteps)."""
    return math.prod(shape[:-1])


def _cell_mult_adds(cell: dict, kind: str, features: int) -> tuple:
    """(mult-adds of one step of one sequence, units): each gate multiplies the input by its
    kernel and the previous state by its recurrent kernel."""
    units = cell["units"]
    return GATES[kind] * units * (features + units), units


def layer_mult_adds(layer: dict, kind: str, reads: tuple, outputs: dict) -> int:
    """One prediction's mult-adds for a layer of `kind` reading shape `reads` (batch first)."""
    if kind in ("SimpleRNN", "LSTM", "GRU"):
        batch, timesteps, features = reads
        return batch * timesteps * _cell_mult_adds(layer, kind, features)[0]
    if kind == "Bidirectional":
        inner = layer["layer"]
        return 2 * layer_mult_adds(inner, class_name(inner, "layer"), reads, outputs)
    if kind == "RNN":
        batch, timesteps, features = reads
        cells = layer["cell"] if isinstance(layer["cell"], list) else [layer["cell"]]
        step = 0
        for cell in cells:  # stacked: each cell reads the one below it
            cell_kind = cell["_target_"].rsplit(".", 1)[1]
            cost, features = _cell_mult_adds(cell, cell_kind[: -len("Cell")], features)
            step += cost
        return batch * timesteps * step
    if kind in ("Dense", "TimeDistributed"):
        dense = layer.get("layer", layer)
        return _positions(reads) * reads[-1] * dense["units"]
    if kind == "Conv1D":
        batch, length, filters = outputs["output"]
        kernel = layer["kernel_size"]
        kernel = kernel[0] if isinstance(kernel, list) else kernel
        return batch * length * kernel * reads[-1] * filters
    if kind == "BatchNormalization":
        return _elements(reads)  # one multiply-add per value: x * scale + shift, at inference
    return 0  # Embedding (a lookup), Masking, Dropout, Lambda: no products


def recurrent_copies(layer: dict, kind: str, reads: tuple, compute: int) -> int:
    """The bytes Keras's TensorFlow loop copies for a recurrent layer, a direction each: its input
    transposed to time-major and split into steps (two copies of what it reads), and, when it
    returns every step, the steps' outputs written, stacked and transposed back (three copies).
    Measured within 10% on the large cells of benchmarks/RESULTS.md."""
    if kind == "Bidirectional":
        inner = layer["layer"]
        return 2 * recurrent_copies(inner, class_name(inner, "layer"), reads, compute)
    if kind not in ("SimpleRNN", "LSTM", "GRU", "RNN"):
        return 0
    copies = 2 * compute * _elements(reads)
    if layer.get("return_sequences"):
        cells = layer["cell"] if kind == "RNN" else layer
        units = (cells[-1] if isinstance(cells, list) else cells)["units"]
        copies += 3 * compute * _positions(reads) * units
    return copies


def job_cost(layers: list, plan: StackPlan, config: dict) -> JobCost:
    """The cost of the job `config` describes, for the oracle's `plan` at its generated sizes."""
    compute = COMPUTE_BYTES[config["precision"]]
    by_index = {layer.index: layer for layer in plan.layers}
    costs, activations, copies = [], 0, 0
    for layer in plan.layers:
        source = layer.source
        reads = (plan.inputs[source] if source in plan.inputs
                 else by_index[int(source.rsplit(".", 1)[1])].outputs["output"])
        kind = class_name(layers[layer.index], f"model.layers.{layer.index}")
        output_bytes = compute * sum(_elements(shape) for shape in layer.outputs.values())
        activations += output_bytes
        copies += recurrent_copies(layers[layer.index], kind, reads, compute)
        costs.append(LayerCost(layer.index,
                               layer_mult_adds(layers[layer.index], kind, reads, layer.outputs),
                               WEIGHT_BYTES * layer.param_count, output_bytes))
    data, timing = config["data"], config["timing"]
    batches = data["batches"]
    calls = batches + (timing["warmup"] + timing["repeats"] if timing["repeats"] else 0)
    input_elements = sum(_elements(shape) for shape in plan.inputs.values())
    batch_size = next(iter(plan.inputs.values()))[0]
    rows = min(batch_size, config["reference_rows"] or batch_size) / batch_size
    predictions = compute * sum(_elements(shape) for name, shape in plan.outputs.items())
    reference = REFERENCE_BYTES * (plan.param_count + rows * batches * (
        input_elements + activations / compute))
    return JobCost(tuple(costs), calls, batches, WEIGHT_BYTES * plan.param_count, 4 * input_elements
                   * batches, DRAWN_BYTES * max(_elements(s) for s in plan.inputs.values()),
                   activations, copies, predictions * batches, int(reference))


def long_job_line(cost: JobCost, data: dict) -> Optional[str]:
    """The line a job estimated to take long starts with, saying how to make it smaller."""
    if cost.total_mult_adds <= LONG_MULT_ADDS:
        return None
    seconds = cost.total_mult_adds / MEASURED_RATE
    took = (f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min")
    timed = " or timing.repeats=0 (no timed calls)" if cost.calls > cost.batches else ""
    return (f"long job: {human_count(cost.total_mult_adds)} mult-adds over {cost.calls} "
            f"predictions of data.batch_size={data['batch_size']} x "
            f"data.timesteps={data['timesteps']}, about {took} at "
            f"{human_count(MEASURED_RATE)} mult-adds/s on 2 CPU cores; lower data.batch_size or "
            f"data.timesteps{timed} to make it smaller")


def available_bytes() -> Optional[int]:
    """The memory the kernel says a new job may take without swapping (Linux: MemAvailable)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def human_bytes(size: float) -> str:
    """`7.3 TiB`, `22.1 GiB`, `512 KiB`."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} PiB"


def human_count(count: float) -> str:
    """`6.3e13`: mult-adds at a glance; small counts as they are."""
    return str(int(count)) if count < 10**6 else f"{count:.1e}".replace("e+", "e")

