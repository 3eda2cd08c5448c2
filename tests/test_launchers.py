"""Sweeps past one process: the same grid under Hydra's joblib, Ray and submitit launchers,
one MLflow parent for all, the parent's id handed to every worker."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

import servers
from helpers import CONF, check_children

pytestmark = pytest.mark.slow  # subprocesses and servers: in `make test`, not `make check`


@pytest.mark.fresh_store
def test_joblib_runs_eight_jobs_on_four_workers_under_one_parent(run_cli, client, tmp_path):
    assert not (tmp_path / "outputs" / "mlflow.db").exists()  # a fresh store, made before launch
    result = run_cli("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=4",
                     "model=simple_rnn,lstm,gru,bilstm", "return_sequences=false,true")
    assert result.returncode == 0, result.stderr[-3000:]
    parent, children = check_children(client, 8)
    workers = {c.data.tags["runner.pid"] for c in children}
    assert parent.data.tags["runner.pid"] not in workers and len(workers) >= 2
    # progress numbered as jobs complete, whichever worker finishes one
    progress = [line.split("]")[0] for line in result.stdout.splitlines() if line[:1] == "["]
    assert progress == [f"[{n}/8" for n in range(1, 9)], result.stdout
    # a job's seconds in the table are its own work, not its worker's import of TensorFlow
    table = {line.split()[1]: float(line.split()[-1]) for line in result.stdout.splitlines()
             if line[:1].isdigit()}
    for child in children:
        assert table[child.info.run_name] == round(child.data.metrics["job.seconds"], 2)
    first = min(children, key=lambda c: c.info.start_time)
    assert first.data.metrics["job.seconds"] < (first.info.end_time - first.info.start_time) / 1000


def test_ray_cluster_by_address_runs_four_jobs_one_gpu_each(run_cli, client):
    """A real head (two logical GPUs declared on this CPU box); `ray_gpu` asks one per job,
    so Ray hands each job its own CUDA_VISIBLE_DEVICES."""
    with servers.ray_head(num_cpus=2, num_gpus=2) as ray_env:
        result = run_cli("-m", "hydra/launcher=ray_gpu", "model=lstm,gru",
                         "return_sequences=false,true", env=ray_env)
    assert result.returncode == 0, result.stderr[-3000:]
    parent, children = check_children(client, 4)
    assert {c.data.tags["cuda.visible_devices"] for c in children} == {"0", "1"}
    assert parent.data.tags["runner.pid"] not in {c.data.tags["runner.pid"] for c in children}


def _slurm_launcher_config():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        config = compose("config", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
    return OmegaConf.to_container(config.hydra.launcher)


def test_the_slurm_config_makes_the_sbatch_script_a_user_expects():
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from submitit.slurm.slurm import _make_sbatch_string

    launcher = _slurm_launcher_config()
    assert launcher["_target_"].endswith("SlurmLauncher")
    shared = set(OmegaConf.structured(BaseQueueConf).keys())
    slurm = {key: value for key, value in launcher.items()
             if key not in shared and key not in ("_target_", "max_num_timeout")}
    script = _make_sbatch_string(
        command="python -u -m submitit.core._submit /folder", folder="/folder",
        job_name="runner", time=launcher["timeout_min"], nodes=launcher["nodes"],
        ntasks_per_node=launcher["tasks_per_node"], cpus_per_task=launcher["cpus_per_task"],
        gpus_per_node=launcher["gpus_per_node"], mem=f"{launcher['mem_gb']}GB", **slurm)
    for line in ("#SBATCH --gpus-per-node=1", "#SBATCH --cpus-per-task=4", "#SBATCH --mem=16GB",
                 "#SBATCH --time=20", "#SBATCH --ntasks-per-node=1", "#SBATCH --nodes=1"):
        assert line in script.splitlines()


def test_the_slurm_config_runs_through_submitits_local_executor(run_cli, client):
    """Every parameter of conf/hydra/launcher/slurm.yaml is checked by submitit's SLURM rules;
    the jobs then run as local submitit jobs (tests/plugins: the executor, and nothing else,
    swapped)."""
    plugins = str(CONF.parent / "tests" / "plugins")
    result = run_cli("-m", "hydra/launcher=slurm",
                     "hydra.launcher._target_=hydra_plugins.slurm_on_local.SlurmOnLocalExecutor",
                     "model=lstm,bilstm", "return_sequences=false,true",
                     env={"PYTHONPATH": plugins})
    assert result.returncode == 0, result.stderr[-3000:]
    parent, children = check_children(client, 4, models=("lstm", "bilstm"))
    assert {c.data.tags["cuda.visible_devices"] for c in children} == {"0"}  # gpus_per_node: 1
    sweep = Path(parent.data.tags["sweep.dir"])
    assert len(list((sweep / ".submitit").glob("*/*_0_result.pkl"))) == 4
