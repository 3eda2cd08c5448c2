"""Every private name of a library (Python's own, and one of Keras's on JAX) that the runner
uses, in one place, each with the reason it stays. `tests/test_private_names.py` fails loudly
when one goes, or when the Keras behaviour one corrects changes.

Hydra, OmegaConf, MLflow and TensorFlow are used through their public API only."""

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


def masked_steps_output_zeros_on_jax() -> None:
    """Make Keras's recurrent loop on JAX output zeros at a masked step before a row's first
    unmasked one, as it does on TensorFlow and PyTorch and as Keras's own tests expect.

    Keras 3.15's JAX loop (`keras.src.backend.jax.rnn.rnn`, unrolled=False) outputs the previous
    output at a masked step, and takes the first state for it: at a leading masked step of a
    layer started from a state (initial_state, or a stateful layer's carried state) it outputs
    that state's h, where TensorFlow and PyTorch start the previous output at zeros (measured:
    3 of Keras's 41 cases, tests/data/keras_rnn_cases.json, failed on JAX, and a Masking ->
    stateful LSTM stack of the runner's own was 0.22 off its reference). The loop
    is given the previous output as one more state, started at zeros, so JAX's own masking
    carries it as TensorFlow's does; every other step is Keras's. Keras has no public hook into
    its backend loop; the layers call it as `keras.src.backend.rnn`."""
    backend = sys.modules["keras.src.backend"]
    keras_rnn = sys.modules["keras.src.backend.jax.rnn"].rnn
    if getattr(backend.rnn, "__wrapped__", None) is keras_rnn:
        return

    def rnn(step_function, inputs, initial_states, *args, **kwargs):
        import jax.numpy as jnp
        from keras import tree

        mask = kwargs.get("mask", args[1] if len(args) > 1 else None)
        if mask is None or kwargs.get("zero_output_for_mask") or not initial_states:
            return keras_rnn(step_function, inputs, initial_states, *args, **kwargs)
        # the state Keras's JAX loop takes for the previous output (a stack of cells: the
        # last cell's first), so the output's shape
        previous = initial_states[0]
        if tree.is_nested(previous):
            previous = initial_states[-1][0]

        def step(step_inputs, states):
            step_output, new_states = step_function(step_inputs, tuple(states[1:]))
            return step_output, [step_output, *new_states]

        started = [jnp.zeros_like(previous), *initial_states]
        last, outputs, states = keras_rnn(step, inputs, started, *args, **kwargs)
        return last, outputs, list(states[1:])

    rnn.__wrapped__ = keras_rnn
    backend.rnn = rnn
