"""The runner's Hydra configs, installed as the package `runner.conf` (pyproject.toml)."""
