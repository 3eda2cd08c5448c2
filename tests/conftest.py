"""Fixtures: configs composed as the CLI composes them, the CLI in a subprocess, a tmp store.

The CLI runs in tmp_path exactly as a user types it: the project's defaults put its outputs and
its store under tmp_path/outputs."""

import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hypothesis import HealthCheck, settings

from ci_skips import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401
from helpers import CONF, runner_env, store_of
from runner.schema import register_schema

register_schema()

# Property tests: reproducible, no example database; `make check` draws fewer examples
for profile, examples in (("test", 100), ("check", 25)):
    settings.register_profile(profile, max_examples=examples, deadline=None, derandomize=True,
                              database=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "test"))


# The longest modules, as `pytest --durations=0` on two workers measured them
# (all tests of a module together): benchmark smoke runs (`make bench-smoke`), real servers
# stopped and started, sweeps; the last two are a single long test each
LONGEST = ("test_benchmarks.py", "test_team_server.py", "test_outage.py", "test_backends.py",
           "test_faults.py", "test_first_hour.py", "test_launchers.py", "test_resume.py",
           "test_ui.py", "test_wheel.py")


def pytest_collection_modifyitems(items):
    """The longest modules first, each kept whole: the two test processes start on the long
    tests and end on short ones, instead of one finishing a long test alone at the end."""
    rank = {name: index for index, name in enumerate(LONGEST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONGEST)))


@pytest.fixture
def make_cfg(tmp_path):
    """compose(overrides) -> the job config as a job sees it (`${hydra:...}` resolves), its
    store in tmp_path."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    def _make(*overrides):
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
            config = compose("config", overrides=[f"tracking.uri={store_of(tmp_path)}",
                                                  f"tracking.journal={tmp_path}/outputs/journal",
                                                  *overrides], return_hydra_config=True)
        HydraConfig.instance().set_config(config)
        return OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])

    return _make


@pytest.fixture
def store_uri(tmp_path):
    return store_of(tmp_path)


@pytest.fixture
def run_cli(request, tmp_path):
    """Run `python -m runner ARGS` in tmp_path, as a user types it. In a test that reads the
    store back (`client`), the default store is there already, empty, as after a user's first
    command (migrating a fresh sqlite store costs about 1.3 s of CPU); a test marked
    `fresh_store` meets none."""
    premade = "client" in request.fixturenames and not request.node.get_closest_marker(
        "fresh_store")

    def _run(*args, env=None, timeout=300):
        if premade and "MLFLOW_TRACKING_URI" not in (env or {}) and not (
                tmp_path / "outputs").exists():
            request.getfixturevalue("made_store")
        return subprocess.run([sys.executable, "-m", "runner", *args], cwd=tmp_path,
                              env=runner_env(**(env or {})), capture_output=True, text=True,
                              timeout=timeout)

    return _run


class _LazyClient:
    """An MlflowClient made on first use: making one creates a sqlite store, which must not
    exist before the CLI under test makes it."""

    def __init__(self, uri: str) -> None:
        self.uri, self._client = uri, None

    def __getattr__(self, name: str):
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.uri)
        return getattr(self._client, name)


@pytest.fixture
def client(store_uri):
    return _LazyClient(store_uri)


@pytest.fixture(scope="session")
def _empty_store(tmp_path_factory):
    """An empty sqlite store, made (migrated: about 2 s) once a session."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("empty-store") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments(max_results=1)
    return path


@pytest.fixture
def made_store(_empty_store, tmp_path, store_uri):
    """The project's default store under tmp_path, there already (a copy of an empty one): for
    a test that opens it in-process, and for run_cli in a test that reads the store back."""
    import shutil

    (tmp_path / "outputs").mkdir()
    shutil.copyfile(_empty_store, tmp_path / "outputs" / "mlflow.db")
    return store_uri
