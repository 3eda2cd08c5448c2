"""The code stays readable: no module past about 350 lines, no import cycle between modules,
and importing the package costs neither TensorFlow nor MLflow."""

import ast
import subprocess
import sys

from helpers import ROOT

PACKAGES = ("runner", "hydra_plugins/runner_sweeper")


def _modules() -> dict:
    """module name -> path, for every module of the project."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _imports(path, modules: dict) -> set:
    """The project modules a module imports, at any depth of its code."""
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        imported.update(name for name in names if name in modules)
    return imported


def test_no_module_is_longer_than_about_350_lines():
    long = {name: n for name, path in _modules().items()
            if (n := len(path.read_text().splitlines())) > 360}
    assert long == {}


def test_the_import_graph_has_no_cycle():
    modules = _modules()
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    cycles, state = [], {}

    def visit(name, trail):
        state[name] = "open"
        for dependency in graph[name]:
            if state.get(dependency) == "open":
                cycles.append(trail[trail.index(dependency):] + [dependency])
            elif dependency not in state:
                visit(dependency, trail + [dependency])
        state[name] = "done"

    for name in graph:
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_importing_the_package_costs_neither_tensorflow_nor_mlflow():
    probe = ("import sys, runner.__main__, runner.validate, runner.job, runner.recording.client, "
             "hydra_plugins.runner_sweeper.grid_sweeper; "
             "print(sorted(m for m in ('tensorflow', 'keras', 'mlflow') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.strip() == "[]", result.stderr


def test_what_the_recording_process_imports_to_close_a_sweep_costs_no_hydra():
    """The recording process never composes a config: closing a sweep there (its summary, its
    figures, its cells' records) imports neither Hydra nor OmegaConf (0.19 s at every close)."""
    probe = ("import sys, runner.recording.process, runner.recording.store, runner.results, "
             "runner.recording.summary, runner.report, runner.plots; "
             "print(sorted(m for m in ('hydra', 'omegaconf', 'tensorflow', 'keras') "
             "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.strip() == "[]", result.stderr
