"""Build a Keras functional model from a model config's layers and the oracle's plan."""

from typing import Optional

import keras
from hydra.utils import instantiate

from runner.errors import StackError
from runner.functions import FUNCTIONS
from runner.shapes import StackPlan
from runner.shape_rules import FLOWING
from runner.weights import draw_weights, undrawn

GRAPH_WORDS = ("input", "initial_state")  # the runner's, not Keras's: never passed to a layer


def make_layer(layer_cfg: dict) -> keras.layers.Layer:
    """One Keras layer from its config; Lambda functions are looked up by registered name."""
    layer_cfg = {k: v for k, v in layer_cfg.items() if k not in GRAPH_WORDS}
    kwargs = {}
    if "function" in layer_cfg:
        kwargs["function"] = FUNCTIONS[layer_cfg["function"]]
    if layer_cfg.get("merge_mode") == "none":
        kwargs["merge_mode"] = None  # Keras spells "two separate outputs" as None
    return instantiate(layer_cfg, _convert_="all", **kwargs)


def build_model(layers: list, plan: StackPlan, name: str, seed: Optional[int] = None) -> tuple:
    """(the model, its Keras layers by index): outputs named as the oracle names them. With a
    seed, its trainable weights are drawn from it (runner.weights), the layers built with zeros
    where the config names no initializer: the draw replaces those."""
    inputs = {input_name: keras.Input(shape=shape[1:], batch_size=shape[0], name=input_name,
                                      dtype="int32" if input_name in plan.tokens else "float32")
              for input_name, shape in plan.inputs.items()}
    flowing = dict(inputs)  # what a layer may read: a model input, or `model.layers.N`
    results, built = {}, {}  # index -> its named results; index -> its Keras layer
    for layer_plan in plan.layers:
        layer_cfg = layers[layer_plan.index]
        layer = built[layer_plan.index] = make_layer(
            layer_cfg if seed is None else undrawn(layer_cfg))
        kwargs = {}
        if layer_plan.initial_state is not None:
            start = results[layer_plan.initial_state]
            kwargs["initial_state"] = [v for k, v in start.items() if k not in FLOWING]
        returned = keras.tree.flatten(layer(flowing[layer_plan.source], **kwargs))
        if len(returned) != len(layer_plan.outputs):
            raise StackError(
                f"model.layers.{layer_plan.index}: Keras returns {len(returned)} outputs, the "
                f"shape oracle expects {len(layer_plan.outputs)} ({', '.join(layer_plan.outputs)})")
        results[layer_plan.index] = dict(zip(layer_plan.outputs, returned))
        flowing[f"model.layers.{layer_plan.index}"] = results[layer_plan.index].get("output")
    outputs = {name: results[plan.last if name in FLOWING else plan.holder][name]
               for name in plan.outputs}  # the last layer's, then the last recurrent's states
    model_inputs = inputs if len(inputs) > 1 else next(iter(inputs.values()))
    model = keras.Model(inputs=model_inputs, outputs=outputs, name=name)
    if seed is not None:
        draw_weights(built, layers, seed)
    return model, built


def layer_outputs(built: dict, plan: StackPlan) -> dict:
    """index -> {name: (Keras's symbolic shape, whether Keras gives it a mask)}."""
    found = {}
    for layer_plan in plan.layers:
        results = keras.tree.flatten(built[layer_plan.index].output)
        found[layer_plan.index] = {
            name: (tuple(tensor.shape), getattr(tensor, "_keras_mask", None) is not None)
            for name, tensor in zip(layer_plan.outputs, results)}
    return found


def layer_arrays(model: keras.Model, built: dict, plan: StackPlan, batch: dict,
                 indices: list) -> dict:
    """index -> {name: the shape of the array Keras predicts}, for the layers at `indices`: where
    Keras's symbolic shape is not to be trusted, the arrays of one call on the real batch say."""
    named = {layer_plan.index: layer_plan.outputs for layer_plan in plan.layers}
    tensors = {f"layer_{index}_{name}": tensor for index in indices
               for name, tensor in zip(named[index], keras.tree.flatten(built[index].output))}
    probe = keras.Model(inputs=model.input, outputs=tensors)
    arrays = probe(batch if len(batch) > 1 else next(iter(batch.values())), training=False)
    return {index: {name: tuple(arrays[f"layer_{index}_{name}"].shape) for name in named[index]}
            for index in indices}
