"""The notebook's Lambda functions, registered so a saved model loads with safe_mode=True."""

import keras
from keras import ops

from runner.vocabulary import LAMBDA_FUNCTIONS


@keras.saving.register_keras_serializable(package="runner")
def expand_last_axis(x):
    """(batch, timesteps) -> (batch, timesteps, 1): the notebook's tf.expand_dims(x, axis=-1)."""
    return ops.expand_dims(x, axis=-1)


@keras.saving.register_keras_serializable(package="runner")
def scale(x, factor):
    """The notebook's output scale-up, `x * 100.0`, with the factor from config."""
    return x * factor


# Every function a config may name (runner.vocabulary), and no other
FUNCTIONS = {name: globals()[name] for name in LAMBDA_FUNCTIONS}
