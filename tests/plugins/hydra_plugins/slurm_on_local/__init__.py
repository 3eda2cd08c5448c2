"""The project's SLURM launcher config, run through submitit's local executor.

submitit's AutoExecutor checks every `slurm_*` parameter against SLURM's own rules whatever the
cluster, then runs the jobs with the executor it is given: here the local one, in subprocesses.
"""

import submitit
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher


class _LocalAutoExecutor(submitit.AutoExecutor):
    def __init__(self, folder, cluster=None, **kwargs):
        super().__init__(folder, cluster="local", **kwargs)


class SlurmOnLocalExecutor(SlurmLauncher):
    def launch(self, job_overrides, initial_job_idx):
        auto_executor, submitit.AutoExecutor = submitit.AutoExecutor, _LocalAutoExecutor
        try:
            return super().launch(job_overrides, initial_job_idx)
        finally:
            submitit.AutoExecutor = auto_executor
