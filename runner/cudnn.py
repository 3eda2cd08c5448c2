"""When Keras may, and when it does, run an LSTM or GRU on NVIDIA's cuDNN kernel."""

from typing import Optional


def cudnn_eligible(layer: dict) -> bool:
    """Whether Keras may run this LSTM/GRU on the cuDNN kernel (when TensorFlow sees a GPU):
    tanh and sigmoid, no recurrent dropout, not unrolled, a bias, and for GRU reset_after."""
    return (layer.get("activation", "tanh") == "tanh"
            and layer.get("recurrent_activation", "sigmoid") == "sigmoid"
            and not layer.get("recurrent_dropout", 0)
            and not layer.get("unroll", False)
            and layer.get("use_bias", True)
            and (layer["_target_"] != "keras.layers.GRU" or layer.get("reset_after", True)))


def cudnn_used(model, batch: dict) -> Optional[bool]:
    """Whether the graph TensorFlow runs for this model calls a cuDNN RNN kernel: what
    happened, not what the config allowed (never, where TensorFlow sees no GPU).

    None on the jax and torch backends: Keras decides there at each call whether to take the
    cuDNN path and leaves no graph to read, so nothing is known and nothing is guessed."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    if not tf.config.list_logical_devices("GPU"):
        return False
    inputs = batch if len(batch) > 1 else next(iter(batch.values()))
    specs = tf.nest.map_structure(lambda array: tf.TensorSpec(array.shape, array.dtype), inputs)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(specs).graph
    definition = graph.as_graph_def()
    ops = [node.op for node in definition.node]
    ops += [node.op for function in definition.library.function for node in function.node_def]
    return any(op.startswith("CudnnRNN") for op in ops)
