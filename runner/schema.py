"""The typed shape of the composed config: typos and wrong types fail at compose time."""

import uuid
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from runner.vocabulary import MERGE_MODES

MergeMode = Enum("MergeMode", {mode: mode for mode in MERGE_MODES}, type=str)


class Precision(str, Enum):  # Keras's dtype policies
    float32 = "float32"
    mixed_float16 = "mixed_float16"
    mixed_bfloat16 = "mixed_bfloat16"


class Backend(str, Enum):  # Keras's backends: each job in a process whose Keras uses its own
    tensorflow = "tensorflow"
    jax = "jax"
    torch = "torch"


class SortBy(str, Enum):  # a sweep's summary table
    job = "job"
    throughput = "throughput"


class Mode(str, Enum):
    run = "run"  # build, predict, check and record
    explain = "explain"  # print the shapes the oracle expects; no TensorFlow, no store


@dataclass
class ModelSchema:
    name: str = "${hydra:runtime.choices.model}"  # the model file's name, unless it says
    units: int = MISSING  # needed only where a layer takes ${model.units}
    input_shape: List[Optional[int]] = MISSING  # per example; null = any number of timesteps
    inputs: Optional[Dict[str, Any]] = None  # several named inputs: name -> input_shape
    batch_size: Optional[int] = None  # a fixed batch (stateful layers need one)
    data_scale: float = 1.0  # the scale the notebook draws this stack's inputs at (no shape says it)
    layers: List[Any] = MISSING  # free-form: real Keras classes by _target_


@dataclass
class DataSchema:
    batch_size: int = 4
    timesteps: int = 30
    features: int = 1
    scale: float = 1.0
    padding: float = 0.0  # up to this fraction of each sequence, at its end, is padding
    batches: int = 1  # consecutive batches a run predicts (a stateful layer carries its states)
    # Per model input, by name: {timesteps: N, features: N} for the axes its shape leaves null
    inputs: Dict[str, Any] = field(default_factory=dict)


@dataclass
class TrackingSchema:
    uri: Optional[str] = None  # MLFLOW_TRACKING_URI wins when set
    experiment: str = "rnn-shapes"
    artifact_root: Optional[str] = None  # default: beside a sqlite store, else the server's
    journal: Optional[str] = None  # where records wait while a server is away; null: nowhere
    retry_minutes: float = 10.0  # how long a server gone away mid-sweep is tried again


@dataclass
class TimingSchema:
    warmup: int = 1  # untimed calls after the first
    repeats: int = 5  # timed calls; 0: no timing (no warm-up call either)


@dataclass
class RunnerSchema:
    model: ModelSchema = field(default_factory=ModelSchema)
    data: DataSchema = field(default_factory=DataSchema)
    tracking: TrackingSchema = field(default_factory=TrackingSchema)
    return_sequences: bool = False
    return_state: bool = False
    merge_mode: MergeMode = MergeMode.concat
    seed: int = 0
    mode: Mode = Mode.run
    precision: Precision = Precision.float32
    backend: Backend = Backend.tensorflow
    jit_compile: str = "auto"  # auto | true | false; a job spec holds "auto", True or False
    timing: TimingSchema = field(default_factory=TimingSchema)
    tolerances: Dict[str, float] = field(default_factory=dict)  # per precision
    tolerance: float = 1e-5  # largest oracle.max_abs_err a run may have
    sort_by: SortBy = SortBy.job  # a sweep's table: by job, or fastest first
    reference_rows: int = 16  # batch rows the NumPy reference recomputes; 0: every row
    gpu_memory_growth: bool = True  # TensorFlow takes GPU memory as needed, not all at once
    verbose: bool = False  # the libraries' own logs too
    resume: Optional[str] = None  # a sweep's `last`, or its parent's run id (runner_sweeper)


def register_schema() -> None:
    """Make `runner_schema` and the resolvers conf/config.yaml uses available to Hydra."""
    ConfigStore.instance().store(name="runner_schema", node=RunnerSchema)
    if not OmegaConf.has_resolver("unique"):
        # cached per config, and copied into every job's config with `now`'s: one value a sweep
        OmegaConf.register_new_resolver("unique", lambda: uuid.uuid4().hex[:6], use_cache=True)
    if not OmegaConf.has_resolver("runner_help"):
        OmegaConf.register_new_resolver("runner_help", _help_text)
    if not OmegaConf.has_resolver("log_level"):
        OmegaConf.register_new_resolver("log_level",
                                        lambda verbose: "INFO" if verbose else "WARNING")


def _help_text() -> str:
    from runner.help import help_text

    return help_text()
