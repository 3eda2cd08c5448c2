"""One job, as the notebook does it: make inputs, build, predict, check; then record."""

import functools
import gc
import hashlib
import io
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from omegaconf import DictConfig, OmegaConf

from runner import tracking
from runner.recorder import RecorderGone, recorder
from runner.shapes import cudnn_eligible, format_shape, outputs_line
from runner.signals import Interrupted, interruptible, signal_received, signals_raise
from runner.spec import JobSpec, job_spec, resolved


class CheckError(RuntimeError):
    """Keras disagrees with the oracle or the NumPy reference: the run fails."""


@dataclass
class JobOutcome:
    label: str
    outputs: dict = field(default_factory=dict)  # name -> shape
    error: Optional[BaseException] = None

    @property
    def line(self) -> str:
        """`bilstm return_sequences=True -> output (4, 30, 6)`, as the notebook prints it."""
        if self.error is not None:
            first = str(self.error).splitlines()[0] if str(self.error) else ""
            return f"{self.label} -> FAILED: {type(self.error).__name__}: {first}"
        return f"{self.label} -> {outputs_line(self.outputs)}"


def flatten(node, prefix: str = "") -> dict:
    """Every leaf of a nested dict/list as `a.b.0.c` -> str(value)."""
    if isinstance(node, dict) and node:
        items = node.items()
    elif isinstance(node, list) and node:
        items = enumerate(node)
    else:
        return {prefix: str(node)}
    flat = {}
    for key, value in items:
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def predictions_sha256(inputs: np.ndarray, outputs: dict) -> str:
    """One digest over the inputs and every named output: equal digests, equal numbers."""
    digest = hashlib.sha256()
    for name, array in [("input", inputs), *sorted(outputs.items())]:
        array = np.ascontiguousarray(array)
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


class _NewModelRetracing(logging.Filter):
    """Every job builds a new model, so TensorFlow's "triggered tf.function retracing" warning
    is expected once per job; this drops that one message and nothing else."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


_RETRACING_FILTER = _NewModelRetracing()


def resident_mb() -> float:
    """This process's resident memory now, in MiB (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


def predict(model, inputs: np.ndarray) -> tuple:
    """Named outputs as NumPy arrays, and the seconds the prediction took.

    One compiled call over the whole batch: as fast as `model(x)` on small batches, and about
    half the time of `model.predict` on a 1024 x 512 x 16 batch (benchmarks/)."""
    start = time.perf_counter()
    outputs = model.predict_on_batch(inputs)
    seconds = time.perf_counter() - start
    return {name: np.asarray(value) for name, value in outputs.items()}, seconds


def check_outputs(spec: JobSpec, model, inputs: np.ndarray, outputs: dict,
                  reference_rows: int = 0) -> dict:
    """Keras against the oracle (shapes, parameter counts) and the NumPy reference (values).

    The reference recomputes the first `reference_rows` rows of the batch (0: all of them):
    rows never mix in these layers, so a sample proves the equations at a fraction of the cost."""
    from runner.model import layer_output_shapes
    from runner.reference import max_abs_err, reference_outputs

    keras_layers = layer_output_shapes(model, spec.plan)
    actual = {name: tuple(array.shape) for name, array in outputs.items()}
    problems = []
    layers = []
    for layer_cfg, layer, layer_plan, shapes in zip(spec.layers, model.layers[1:],
                                                    spec.plan.layers, keras_layers):
        params = layer.count_params()
        if shapes != layer_plan.outputs:
            problems.append(f"model.layers.{layer_plan.index}: Keras gives {shapes}, "
                            f"the oracle {layer_plan.outputs}")
        if params != layer_plan.param_count:
            problems.append(f"model.layers.{layer_plan.index}: Keras counts {params} params, "
                            f"the formula {layer_plan.param_count}")
        entry = {
            "index": layer_plan.index,
            "layer": layer_plan.label,
            "keras_name": layer.name,
            "output_shapes": {k: list(v) for k, v in shapes.items()},
            "expected_output_shapes": {k: list(v) for k, v in layer_plan.outputs.items()},
            "param_count": params,
            "expected_param_count": layer_plan.param_count,
        }
        recurrent = layer_cfg.get("layer", layer_cfg)
        if recurrent["_target_"] in ("keras.layers.LSTM", "keras.layers.GRU"):
            entry["cudnn_eligible"] = cudnn_eligible(recurrent)
        layers.append(entry)
    if actual != spec.expected.outputs:
        problems.append(f"outputs: Keras gives {actual}, the oracle {spec.expected.outputs}")
    param_count = model.count_params()
    if param_count != spec.plan.param_count:
        problems.append(f"param_count: Keras counts {param_count}, the formula {spec.plan.param_count}")
    weights = [layer.get_weights() for layer in model.layers[1:]]
    rows = slice(None) if reference_rows <= 0 else slice(0, reference_rows)
    reference = reference_outputs(spec.layers, spec.plan, weights, inputs[rows])
    error = max_abs_err({name: array[rows] for name, array in outputs.items()}, reference)
    return {
        "input": list(inputs.shape),
        "outputs": {k: list(v) for k, v in actual.items()},
        "expected_outputs": {k: list(v) for k, v in spec.expected.outputs.items()},
        "layers": layers,
        "param_count": param_count,
        "expected_param_count": spec.plan.param_count,
        "match": actual == spec.expected.outputs and not problems,
        "oracle.max_abs_err": error,
        "oracle.rows_checked": int(min(inputs.shape[0], reference_rows or inputs.shape[0])),
        "problems": problems,
    }


def _write_artifacts(directory: Path, cfg: DictConfig, model, inputs: np.ndarray, outputs: dict,
                     shapes: dict, device: dict, label: str, pictures: list) -> None:
    (directory / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (directory / "shapes.json").write_text(json.dumps(shapes, indent=2))
    (directory / "device.json").write_text(json.dumps(device, indent=2))
    np.savez(directory / "predictions.npz", input=inputs, **outputs)
    summary = io.StringIO()
    model.summary(print_fn=lambda line, line_break=True: summary.write(line + "\n"))
    (directory / "model_summary.txt").write_text(summary.getvalue())
    main = outputs.get("output", outputs.get("forward_output"))
    if main.ndim == 3:  # every timestep: the picture the notebook draws of return_sequences
        pictures.append(("output_over_time.png", main[:4, :, :8], label))  # drawn by the recorder


@functools.lru_cache(maxsize=None)
def _freeze_what_is_loaded() -> None:
    """Move every object alive now (TensorFlow, Keras, Hydra: modules that live as long as
    the process) out of the garbage collector's sight, once per process. Each job's
    `clear_session()` collects garbage; without this it walks those half-million objects every
    time (about 0.27 s a job on this machine), with it only the jobs' own."""
    gc.freeze()


def _measure(cfg: DictConfig, tolerance: float, artifact_dir: Path, outcome: JobOutcome,
             tags: dict, metrics: dict, pictures: list) -> None:
    """Build, predict and check one job, writing its artifacts; what it learns goes into
    `outcome`, `tags`, `metrics` and `pictures` as it goes, so a failure half-way still
    records it."""
    import keras

    from runner.data import make_inputs
    from runner.device import allow_memory_growth, describe_device
    from runner.model import build_model

    spec = job_spec(cfg)
    outcome.label = spec.label
    tags.update({f"expected.{k}": format_shape(v) for k, v in spec.expected.outputs.items()})
    if cfg.gpu_memory_growth:
        allow_memory_growth()
    _freeze_what_is_loaded()
    keras.backend.clear_session()  # fresh layer names and graph state for every job
    keras.utils.set_random_seed(cfg.seed)
    inputs = make_inputs(spec.input_shape, cfg.data.scale, cfg.seed)
    model = build_model(spec.layers, spec.plan, spec.name)
    outputs, seconds = predict(model, inputs)
    checks = check_outputs(spec, model, inputs, outputs, cfg.reference_rows)
    device = describe_device()
    _write_artifacts(artifact_dir, cfg, model, inputs, outputs, checks, device, spec.label,
                     pictures)

    outcome.outputs = {name: tuple(array.shape) for name, array in outputs.items()}
    main = outputs.get("output", outputs.get("forward_output"))
    tags.update(device)
    eligible = [entry["cudnn_eligible"] for entry in checks["layers"]
                if "cudnn_eligible" in entry]
    if eligible:  # cuDNN runs only where the config allows it and TensorFlow sees a GPU
        tags["cudnn.used"] = str(all(eligible) and device["device.kind"] == "GPU").lower()
    tags.update({"shape.input": format_shape(inputs.shape),
                 "shape.match": str(checks["match"]).lower(),
                 "predictions.sha256": predictions_sha256(inputs, outputs),
                 "mlflow.note.content": outcome.line})
    tags.update({f"shape.{k}": format_shape(v) for k, v in outcome.outputs.items()})
    metrics.update({"param_count": checks["param_count"], "predict_seconds": seconds,
                    "output.mean": float(np.mean(main)), "output.std": float(np.std(main)),
                    "output.abs_max": float(np.max(np.abs(main))),
                    "oracle.max_abs_err": checks["oracle.max_abs_err"],
                    "process.rss_mb": resident_mb()})
    if checks["problems"]:
        raise CheckError("; ".join(checks["problems"]))
    if not checks["oracle.max_abs_err"] <= tolerance:
        raise CheckError(f"oracle.max_abs_err {checks['oracle.max_abs_err']:.3g} exceeds "
                         f"tolerance {tolerance:g}: Keras and the NumPy reference disagree")


def _now_ms() -> int:
    """Now, as MLflow times runs: the job's own clock, not the recorder's."""
    return int(time.time() * 1000)


def run_job(cfg: DictConfig, run_name: str, job_tags: dict, choices: dict, output_dir: Path,
            tolerance: float) -> JobOutcome:
    """Build, predict, check and record one job; a failure ends its run FAILED, never RUNNING."""
    artifact_dir = output_dir / "artifacts"
    artifact_dir.mkdir(parents=True, exist_ok=True)
    params, tags, metrics, pictures = dict(choices), {}, {}, []
    outcome = JobOutcome(label=run_name)
    run_id = None
    try:  # before the run exists, so even a run killed at once records its config
        params.update(flatten(resolved(cfg)))
    except Exception:  # job_spec below meets the same error, inside the run
        pass
    with interruptible():  # from here a signal is kept, and ends the run KILLED
        try:
            recording = recorder()
            started = recording.submit("start_job", cfg.tracking, run_name, job_tags,
                                       _now_ms())
            import keras  # noqa: F401  (TensorFlow's import, while MLflow's is made elsewhere)

            logging.getLogger("tensorflow").addFilter(_RETRACING_FILTER)
            # a sweep here goes on at once; a job alone learns first that its store answers
            run_id = recording.later(started) if recording.deferring else recording.result(started)
            with signals_raise():
                _measure(cfg, tolerance, artifact_dir, outcome, tags, metrics, pictures)
        except (Exception, SystemExit) as error:  # Interrupted too: its run ends KILLED
            outcome.error = error
        interrupted = signal_received()  # raised above, or swallowed by a finaliser
        if interrupted is not None and not isinstance(outcome.error, Interrupted):
            outcome.error = interrupted
        finish = ("finish_job", cfg.tracking, run_id, params, tags, metrics, artifact_dir,
                  outcome.error, pictures, _now_ms())
        if run_id is not None:  # else the store itself failed: the error says so
            try:
                if recording.deferring:  # the sweep here settles it, in order
                    recording.defer(int(job_tags.get("job.num", 0)), *finish)
                else:
                    recording.call(*finish)
            except (tracking.StoreUnreachable, RecorderGone) as error:  # the result is lost
                own = f"; the job itself: {outcome.line}" if outcome.error else ""
                run = f"run {run_id}" if isinstance(run_id, str) else "its run"
                outcome.error = type(error)(f"{error}; {run} could not be closed{own}")
        late = signal_received()  # one that came while recording: the run is ended already
        if late is not None and not isinstance(outcome.error, Interrupted):
            outcome.error = late
    if isinstance(outcome.error, Interrupted):
        raise outcome.error  # the process exits 128 + signal, once the run is KILLED
    return outcome
