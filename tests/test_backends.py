"""The same stacks on TensorFlow, JAX and PyTorch: each job in a process whose Keras has its
backend, the same weights on each, every cell's runs compared across the backends."""

import itertools
import json
import os
import subprocess
import sys
from collections import defaultdict

import numpy as np
import pytest

from helpers import check_children, parent_and_children, runner_env, runs_of

pytestmark = pytest.mark.slow  # subprocesses on three backends: in `make test`

BACKENDS = ("tensorflow", "jax", "torch")
# On the path of every process the CLI starts: each one that imports TensorFlow says so, with
# the Keras backend it was started for
WATCH_TENSORFLOW = """
import os, sys

class _Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow":
            sys.meta_path.remove(self)
            with open(os.environ["TENSORFLOW_IMPORTS"], "a") as log:
                log.write(f"{os.getpid()} {os.environ.get('KERAS_BACKEND', '-')}\\n")
        return None

sys.meta_path.insert(0, _Watch())
"""


def _watched_env(tmp_path) -> dict:
    watch = tmp_path / "watch"
    watch.mkdir()
    (watch / "sitecustomize.py").write_text(WATCH_TENSORFLOW)
    path = os.pathsep.join(filter(None, [str(watch), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, "TENSORFLOW_IMPORTS": str(tmp_path / "tensorflow_imports")}


def _predictions(client, run, tmp_path) -> dict:
    local = client.download_artifacts(run.info.run_id, "predictions.npz",
                                      str(tmp_path / run.info.run_id))
    with np.load(local) as arrays:
        return {name: arrays[name] for name in arrays.files if not name.startswith("input")}


def test_twelve_cells_on_three_backends_agree_and_only_tensorflow_imports_it(
        run_cli, client, tmp_path):
    result = run_cli("-m", "backend=tensorflow,jax,torch", "model=lstm,gru,bilstm,lambda_lstm",
                     env=_watched_env(tmp_path), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    parent, children = check_children(client, 12, models=("lstm", "gru", "bilstm", "lambda_lstm"))
    assert sorted(c.data.params["backend"] for c in children) == sorted(BACKENDS * 4)
    assert {c.data.tags["backend"]: c.data.tags["backend.version"] for c in children} == {
        name: _version(name) for name in BACKENDS}

    # jit_compile=auto as each backend's Keras takes it: XLA on JAX, on TensorFlow a GPU's only
    assert {c.data.tags["backend"]: c.data.tags["jit.compiled"] for c in children} == {
        "tensorflow": "false", "jax": "true", "torch": "false"}
    assert not any("cudnn.used" in c.data.tags for c in children
                   if c.data.tags["backend"] != "tensorflow")  # nothing to observe there
    cells = defaultdict(list)  # each cell's three runs, by its config but its backend
    for child in children:
        cells[child.data.tags["cell.sha256"]].append(child)
    assert sorted({c.data.params["model"] for c in runs} == {runs[0].data.params["model"]}
                  and len(runs) for runs in cells.values()) == [3, 3, 3, 3]
    for runs in cells.values():
        assert {c.data.params["backend"] for c in runs} == set(BACKENDS)
        differ = {c.data.metrics["backends.max_abs_diff"] for c in runs}
        assert len(differ) == 1 and differ.pop() <= 1e-5  # float32: the precision's tolerance
        assert all(c.data.metrics["oracle.max_abs_err"] <= 1e-5 for c in runs)
    [bilstm] = [runs for runs in cells.values() if runs[0].data.params["model"] == "bilstm"]
    outputs = [_predictions(client, run, tmp_path) for run in bilstm]
    worst = max(float(np.max(np.abs(a["output"].astype(np.float64) - b["output"])))
                for a, b in itertools.combinations(outputs, 2))
    assert worst == pytest.approx(bilstm[0].data.metrics["backends.max_abs_diff"], rel=1e-6)

    header = next(line for line in result.stdout.splitlines() if line.startswith("job "))
    assert "backends differ" in header
    table = subprocess.run([sys.executable, "-m", "runner.results", "--format", "json"],
                           cwd=tmp_path, env=runner_env(), capture_output=True, text=True)
    assert table.returncode == 0, table.stderr
    rows = json.loads(table.stdout)
    assert sorted(row["backend"] for row in rows) == sorted(BACKENDS * 4)
    assert all(row["backends.max_abs_diff"] <= 1e-5 for row in rows)

    imported = (tmp_path / "tensorflow_imports").read_text().split("\n")[:-1]
    assert {line.split()[1] for line in imported} == {"tensorflow"}, imported  # nowhere else


def _version(package: str) -> str:
    import importlib.metadata

    return importlib.metadata.version(package)  # as the backend says it: 2.13.0+cpu


def test_a_backend_that_cannot_start_fails_its_cells_and_a_resume_runs_only_them(
        run_cli, client, tmp_path):
    grid = ["-m", "backend=tensorflow,jax", "model=lstm"]
    broken = run_cli(*grid, env={"JAX_PLATFORMS": "no-such-platform"})
    assert broken.returncode == 1
    assert "1 of 2 jobs failed: backend=jax,model=lstm" in broken.stderr
    parent, children = parent_and_children(client)
    failed = {c.data.params["backend"]: c.info.status for c in children}
    assert failed == {"tensorflow": "FINISHED", "jax": "FAILED"}
    [jax_run] = [c for c in children if c.data.params["backend"] == "jax"]
    assert "no-such-platform" in jax_run.data.tags["error"]

    resumed = run_cli(*grid, "resume=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.splitlines()[0] == (
        f"resume: sweep {parent.info.run_id}: 1 of 2 cells to run (jobs 1), 1 FINISHED kept")
    parent, children = parent_and_children(client)
    current = [c for c in children if "superseded_by" not in c.data.tags]
    assert sorted((c.data.params["backend"], c.info.status) for c in current) == [
        ("jax", "FINISHED"), ("tensorflow", "FINISHED")]
    assert parent.info.status == "FINISHED" and len(children) == 3


# A stack of the user's own whose later batches start masked from a carried state: Keras's JAX
# loop alone gives those steps the state, not zeros (runner/private_names.py), 0.22 off the
# reference
MASKED_STATEFUL = """\
# Input(6, 3) -> Masking -> LSTM(4, stateful, go_backwards)   -> (B, T, 4)
input_shape: [6, 3]
batch_size: ${data.batch_size}
layers:
  - _target_: keras.layers.Masking
  - _target_: keras.layers.LSTM
    units: 4
    stateful: true
    go_backwards: true
    return_sequences: true
"""


def test_a_single_run_on_jax_runs_in_its_own_process_without_tensorflow(run_cli, client,
                                                                         tmp_path):
    (tmp_path / "mine" / "model").mkdir(parents=True)
    (tmp_path / "mine" / "model" / "masked_stateful.yaml").write_text(MASKED_STATEFUL)
    result = run_cli("--config-dir", "mine", "model=masked_stateful", "backend=jax",
                     "data.padding=0.5", "data.batches=3", env=_watched_env(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[0] == "masked_stateful -> output (4, 6, 4)"
    [run] = runs_of(client)
    assert run.data.tags["backend"] == "jax" and run.data.params["backend"] == "jax"
    assert run.data.tags["batches"] == "3, states carried"
    assert run.data.metrics["oracle.max_abs_err"] < 1e-5
    assert not (tmp_path / "tensorflow_imports").exists()


def test_joblib_workers_run_cells_of_two_backends(run_cli, client, tmp_path):
    """Each of joblib's two workers takes a TensorFlow cell first, then a PyTorch one, which
    it hands to a worker of its own."""
    result = run_cli("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                     "backend=tensorflow,torch", "model=gru,simple_rnn")
    assert result.returncode == 0, result.stderr[-3000:]
    parent, children = check_children(client, 4, models=("gru", "simple_rnn"))
    assert sorted(c.data.tags["backend"] for c in children) == ["tensorflow"] * 2 + ["torch"] * 2
    assert {c.data.metrics["backends.max_abs_diff"] <= 1e-5 for c in children} == {True}


def test_the_six_guide_models_run_on_jax_and_torch(run_cli, client):
    guide = ("guide_bidirectional", "guide_cells", "guide_embedding_lstm",
             "guide_encoder_decoder", "guide_gru_simple_rnn", "guide_stateful")
    result = run_cli("-m", "backend=jax,torch", f"model={','.join(guide)}", "data.batches=2")
    assert result.returncode == 0, result.stderr[-3000:]
    parent, children = parent_and_children(client)
    assert sorted((c.data.params["backend"], c.data.params["model"], c.info.status)
                  for c in children) == sorted(
        (backend, model, "FINISHED") for backend in ("jax", "torch") for model in guide)
    assert all(c.data.tags["shape.match"] == "true" for c in children)
    assert all(c.data.metrics["backends.max_abs_diff"] <= 1e-5 for c in children)
    [stateful] = {c.data.tags["batches"] for c in children
                  if c.data.params["model"] == "guide_stateful"}
    assert stateful == "2, states carried"


def test_the_backends_sweep_is_every_cell_on_each_backend(run_cli, tmp_path):
    result = run_cli("-m", "sweep=backends", "mode=explain")
    assert result.returncode == 0, result.stderr[-3000:]
    cells = [line.split("[", 1)[1] for line in result.stdout.splitlines()
             if line.startswith(("lstm ", "gru ")) and line.endswith("]")]
    assert len(cells) == result.stdout.count("total params:") == 24
    assert sorted({cell.split(",")[0] for cell in cells}) == [
        "backend=jax", "backend=tensorflow", "backend=torch"]
    assert list(tmp_path.iterdir()) == []  # an explanation leaves nothing behind
