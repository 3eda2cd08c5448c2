"""The `runner` console script: the same app as `python -m runner`."""

import runpy


def main() -> None:
    # Run as __main__ so Hydra finds conf/ beside the package, exactly as with `python -m runner`
    runpy.run_module("runner", run_name="__main__")
