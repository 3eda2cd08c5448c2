"""When Keras runs an LSTM or GRU on NVIDIA's cuDNN kernel."""


def cudnn_eligible(layer: dict) -> bool:
    """Whether Keras may run this LSTM/GRU on the cuDNN kernel (when TensorFlow sees a GPU):
    tanh and sigmoid, no recurrent dropout, not unrolled, a bias, and for GRU reset_after."""
    return (layer.get("activation", "tanh") == "tanh"
            and layer.get("recurrent_activation", "sigmoid") == "sigmoid"
            and not layer.get("recurrent_dropout", 0)
            and not layer.get("unroll", False)
            and layer.get("use_bias", True)
            and (layer["_target_"] != "keras.layers.GRU" or layer.get("reset_after", True)))
