"""Every private name of a library (here, of Python's own) that the runner uses, in one place,
each with the reason it stays. `tests/test_private_names.py` fails loudly when one goes.

Hydra, OmegaConf, MLflow, Keras and TensorFlow are used through their public API only."""

import atexit
import logging
import os
import sys
import threading


def exit_now(code: int) -> None:
    """End the process as the interpreter would, less its teardown of every module.

    What the interpreter does first when it exits, in its order: wait for the threads that are
    not daemons (`threading._shutdown`: joblib's executor stops its workers here), then the
    exit hooks (`atexit._run_exitfuncs`: the recording processes finish what they were asked,
    Ray stops); only the teardown of modules is skipped, which after TensorFlow's import costs
    about 0.75 s a process (measured on 2 cores: the seed sweep went from 1.31x to 0.98x of
    the bare notebook script with it, benchmarks/RESULTS.md). Python has no public call for
    the first two steps alone."""
    threading._shutdown()
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
