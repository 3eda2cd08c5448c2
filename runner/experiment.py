"""One experiment, as the notebook does it: make inputs, build, predict, check.

It records nothing and handles no signal: it returns a JobResult, a failure at any step
included, and the caller (runner.job) decides what becomes of it."""

import dataclasses
import hashlib
import time
from pathlib import Path

import numpy as np

from runner.errors import CheckError
from runner.result import Failure, JobResult, Picture
from runner.cudnn import cudnn_eligible
from runner.shapes import agrees, format_shape, symbolic_finding
from runner.vocabulary import spell, without_login
from runner.validate import JobSpec


def run_experiment(spec: JobSpec, artifact_dir: Path) -> JobResult:
    """The job's result: shapes, metrics and artifacts, or how far it got and why it failed."""
    planned = planned_result(spec, artifact_dir)
    started = time.perf_counter()
    try:
        if spec.refusal is not None:
            raise spec.refusal  # the oracle knows Keras cannot build this stack
        result = _measure(spec, planned)
    except BaseException as error:  # SystemExit and a signal's Interrupted too: all recorded
        result = dataclasses.replace(planned, error=Failure.of(error))
    seconds = {"job.seconds": time.perf_counter() - started}  # the job's own work, no import
    return dataclasses.replace(result, metrics={**result.metrics, **seconds})


def planned_result(spec: JobSpec, artifact_dir: Path) -> JobResult:
    """What is known of a job before it runs: its label, config and expected shapes."""
    tags = {}
    if spec.expected is not None:
        tags = {f"expected.{name}": format_shape(shape)
                for name, shape in spec.expected.outputs.items()}
    if spec.unused:
        tags["knobs.unused"] = ", ".join(spec.unused)
    metrics = {}
    if spec.cost is not None:  # what the oracle estimates, before anything runs
        metrics = {"model.mult_adds": float(spec.cost.mult_adds),
                   "model.weights_estimate_bytes": float(spec.cost.weight_bytes),
                   "memory.estimate_mb": spec.cost.memory_bytes / 2**20}
    return JobResult(label=spec.label, params=flatten(as_recorded(spec.config)),
                     artifact_dir=artifact_dir,
                     tags=tags, metrics=metrics, unused=spec.unused)


def _measure(spec: JobSpec, planned: JobResult) -> JobResult:
    from runner.artifacts import write_artifacts
    from runner.data import make_inputs
    from runner import memory
    from runner.cudnn import cudnn_used
    from runner.device import describe_device
    from runner.model import build_model
    from runner.session import fresh_session
    from runner.timing import speed_metrics, time_calls
    import keras

    config = spec.config
    fresh_session(spec.seed, config["gpu_memory_growth"], config["precision"])
    memory.reset_peak()
    baseline_mb = memory.resident_mb()  # what the estimate is compared with lies above it
    on_gpu = memory.reset_gpu_peak()
    batches = make_inputs(spec.expected, config["data"], spec.seed)
    # the same weights on every Keras backend, drawn from the seed
    model, built = build_model(spec.layers, spec.plan, spec.name, seed=spec.seed)
    if config["jit_compile"] != "auto":  # True or False (validate.JIT_COMPILE)
        model.compile(jit_compile=config["jit_compile"])
    carried = spec.plan.stateful and keras.backend.backend() == "jax"
    predictions, firsts = [], []
    for batch in batches:  # consecutive: a stateful layer carries its states between them
        outputs, took = predict(model, batch, carried)
        predictions.append({name: outputs[name] for name in spec.plan.outputs})  # JAX sorts them
        firsts.append(took)
    timed = time_calls(lambda: predict(model, batches[0], carried), config["timing"]["warmup"],
                       config["timing"]["repeats"])  # after the checked calls
    checks = check_outputs(spec, model, built, batches, predictions, config["reference_rows"])
    device = describe_device()
    write_artifacts(planned.artifact_dir, as_recorded(config), model, batches, predictions, checks,
                    device)

    shapes = {name: tuple(array.shape) for name, array in predictions[0].items()}
    main = predictions[0].get("output", predictions[0].get("forward_output"))
    result = dataclasses.replace(planned, outputs=shapes)
    first = batches[0]
    tags = {**planned.tags, **device,
            **{_input_tag(name, first): format_shape(array.shape) for name, array in first.items()},
            **{f"shape.{name}": format_shape(shape) for name, shape in shapes.items()},
            "shapes": ", ".join(f"{name} {format_shape(shape)}" for name, shape in shapes.items()),
            "shape.match": str(checks["match"]).lower(),
            "predictions.sha256": predictions_sha256(batches, predictions),
            "mlflow.note.content": result.line}
    for layer_key, finding in checks["symbolic_findings"].items():
        tags[f"shape.symbolic.{layer_key}"] = finding  # a shape fact of Keras, not a failure
    if spec.plan.masked:
        tags["mask.outputs"] = ", ".join(sorted(spec.plan.masked))
    if spec.plan.stateful or len(batches) > 1:
        tags["batches"] = f"{len(batches)}, states carried" if spec.plan.stateful else str(
            len(batches))
    if any("cudnn_eligible" in entry for entry in checks["layers"]):
        used = cudnn_used(model, batches[0])  # what happened, where the backend shows it
        if used is not None:
            tags["cudnn.used"] = str(used).lower()
    tags["jit.compiled"] = str(bool(model.jit_compile)).lower()
    first_input = next(iter(batches[0].values()))
    metrics = {**planned.metrics, "param_count": checks["param_count"],
               **speed_metrics(firsts[0], timed, first_input.shape[0], first_input.shape[1]),
               "output.mean": float(np.mean(main)), "output.std": float(np.std(main)),
               "output.abs_max": float(np.max(np.abs(main))),
               "oracle.max_abs_err": checks["oracle.max_abs_err"],
               "memory.peak_rss_mb": memory.peak_mb(), "memory.baseline_mb": baseline_mb,
               "model.weights_bytes": sum(w.nbytes for w in model.get_weights()),
               "process.rss_mb": memory.resident_mb()}
    if timed and spec.cost is not None:
        metrics["throughput.mult_adds_per_second"] = (
            spec.cost.mult_adds / metrics["predict.median_seconds"])
    if on_gpu:
        metrics["memory.gpu_peak_mb"] = memory.gpu_peak_mb()
    pictures = ()
    if main.ndim == 3:  # every timestep: the picture the notebook draws of return_sequences
        pictures = (Picture("output_over_time.png", main[:2, :, :8], spec.label),)
    error = _disagreement(checks, config["tolerance"])
    return dataclasses.replace(result, tags=tags, metrics=metrics, pictures=pictures,
                               error=Failure.of(error) if error else None)


def _input_tag(name: str, batch: dict) -> str:
    return "shape.input" if len(batch) == 1 else f"shape.input.{name}"


def predict(model, batch: dict, carried: bool = False) -> tuple:
    """Named outputs as NumPy arrays, and the seconds the prediction took.

    One compiled call over the whole batch: as fast as `model(x)` on small batches, and about
    half the time of `model.predict` on a 1024 x 512 x 16 batch (benchmarks/). `carried`: a
    stateful stack on JAX, whose `predict_on_batch` starts every call from the states it had
    before the first (JAX's prediction is a pure function); its call carries them on."""
    inputs = batch if len(batch) > 1 else next(iter(batch.values()))
    start = time.perf_counter()
    outputs = model(inputs, training=False) if carried else model.predict_on_batch(inputs)
    seconds = time.perf_counter() - start
    return {name: np.asarray(value) for name, value in outputs.items()}, seconds


def check_outputs(spec: JobSpec, model, built: dict, batches: list, predictions: list,
                  reference_rows: int = 0) -> dict:
    """Keras against the oracle (shapes, masks, parameter counts) and the NumPy reference
    (values, every batch): the content of shapes.json, with the problems found.

    The reference recomputes the first `reference_rows` rows of each batch (0: all of them):
    rows never mix in these layers, so a sample proves the equations at a fraction of the cost.

    Keras's symbolic shape is its arrays' shape except after an activation that halves the last
    axis (vocabulary.HALVING): only there are the layers' arrays computed, by one more call on
    the first batch, and each layer whose symbolic shape they contradict is a finding."""
    from runner.model import layer_arrays, layer_outputs
    from runner.reference import max_abs_err, reference_outputs

    keras_layers = layer_outputs(built, spec.plan)
    expected = {layer_plan.index: layer_plan for layer_plan in spec.expected.layers}
    probed = [layer_plan.index for layer_plan in spec.plan.layers if layer_plan.symbolic]
    arrays = layer_arrays(model, built, spec.plan, batches[0], probed) if probed else {}
    problems, layers, findings = [], [], {}
    for layer_plan in spec.plan.layers:
        index = layer_plan.index
        layer = built[index]
        shapes = {name: shape for name, (shape, _) in keras_layers[index].items()}
        masked = {name for name, (_, has_mask) in keras_layers[index].items() if has_mask}
        params = layer.count_params()
        symbolic = layer_plan.symbolic or layer_plan.outputs  # as the oracle sees Keras's graph
        if shapes != symbolic:
            problems.append(f"model.layers.{index}: Keras gives {shapes}, the oracle {symbolic}")
        if index in arrays and arrays[index] != expected[index].outputs:
            problems.append(f"model.layers.{index}: Keras predicts arrays of {arrays[index]}, "
                            f"the oracle {expected[index].outputs}")
        if index in arrays and not all(agrees(shapes[name], arrays[index][name])
                                       for name in shapes):
            findings[f"model.layers.{index}"] = symbolic_finding(shapes, arrays[index])
        if masked != set(layer_plan.masked):
            problems.append(f"model.layers.{index}: Keras masks {sorted(masked)}, "
                            f"the oracle {sorted(layer_plan.masked)}")
        if params != layer_plan.param_count:
            problems.append(f"model.layers.{index}: Keras counts {params} params, "
                            f"the formula {layer_plan.param_count}")
        entry = {"index": index, "layer": layer_plan.label, "keras_name": layer.name,
                 "reads": layer_plan.source,
                 "output_shapes": {k: list(v) for k, v in shapes.items()},
                 "expected_output_shapes": {k: list(v) for k, v in layer_plan.outputs.items()},
                 "masked": sorted(masked),
                 "param_count": params, "expected_param_count": layer_plan.param_count}
        if index in arrays:
            entry["array_output_shapes"] = {k: list(v) for k, v in arrays[index].items()}
        recurrent = spec.layers[index].get("layer", spec.layers[index])
        if recurrent["_target_"] in ("keras.layers.LSTM", "keras.layers.GRU"):
            entry["cudnn_eligible"] = cudnn_eligible(recurrent)
        layers.append(entry)
    actual = {name: tuple(array.shape) for name, array in predictions[0].items()}
    if any({n: tuple(a.shape) for n, a in p.items()} != spec.expected.outputs
           for p in predictions):
        problems.append(f"outputs: Keras gives {actual}, the oracle {spec.expected.outputs}")
    param_count = model.count_params()
    if param_count != spec.plan.param_count:
        problems.append(f"param_count: Keras counts {param_count}, the formula {spec.plan.param_count}")
    weights = {index: layer.get_weights() for index, layer in built.items()}
    weight_bytes = sum(w.nbytes for ws in weights.values() for w in ws)
    if spec.cost is not None and weight_bytes != spec.cost.weight_bytes:
        problems.append(f"weights: Keras holds {weight_bytes} bytes, the estimate "
                        f"{spec.cost.weight_bytes}")
    rows = slice(None) if reference_rows <= 0 else slice(0, reference_rows)
    sample = [{name: array[rows] for name, array in batch.items()} for batch in batches]
    reference = reference_outputs(spec.layers, spec.plan, weights, sample)
    error = max(max_abs_err({name: array[rows] for name, array in got.items()}, want)
                for got, want in zip(predictions, reference))
    batch_size = next(iter(batches[0].values())).shape[0]
    return {
        "inputs": {name: list(array.shape) for name, array in batches[0].items()},
        "batches": len(batches),
        "outputs": {k: list(v) for k, v in actual.items()},
        "expected_outputs": {k: list(v) for k, v in spec.expected.outputs.items()},
        "masked_outputs": sorted(spec.plan.masked),
        "layers": layers,
        "param_count": param_count,
        "expected_param_count": spec.plan.param_count,
        "match": not problems,
        "oracle.max_abs_err": error,
        "oracle.rows_checked": int(min(batch_size, reference_rows or batch_size)),
        "symbolic_findings": findings,
        "problems": problems,
    }


def _disagreement(checks: dict, tolerance: float):
    """The CheckError that fails the run, or None when Keras agrees with both references."""
    if checks["problems"]:
        return CheckError("; ".join(checks["problems"]))
    if not checks["oracle.max_abs_err"] <= tolerance:
        return CheckError(f"oracle.max_abs_err {checks['oracle.max_abs_err']:.3g} exceeds "
                          f"tolerance {tolerance:g}: Keras and the NumPy reference disagree")
    return None


def as_recorded(config: dict) -> dict:
    """The config as its run keeps it: a tracking server's address without `user:password@`."""
    tracking = {**config["tracking"], "uri": without_login(str(config["tracking"]["uri"]))}
    return {**config, "tracking": tracking}


def flatten(node, prefix: str = "") -> dict:
    """Every leaf of a nested dict/list as `a.b.0.c` -> str(value): the run's params."""
    if isinstance(node, dict) and node:
        items = node.items()
    elif isinstance(node, list) and node:
        items = enumerate(node)
    else:
        return {prefix: spell(node)}
    flat = {}
    for key, value in items:
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def predictions_sha256(batches: list, predictions: list) -> str:
    """One digest over every batch's inputs and named outputs: equal digests, equal numbers."""
    digest = hashlib.sha256()
    for batch, outputs in zip(batches, predictions):
        named = [(f"input.{k}" if len(batch) > 1 else "input", v) for k, v in batch.items()]
        for name, array in [*named, *sorted(outputs.items())]:
            array = np.ascontiguousarray(array)
            digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()
