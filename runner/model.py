"""Build a Keras functional model from the layer list of a model config."""

import keras
from hydra.utils import instantiate

from runner.errors import StackError
from runner.functions import FUNCTIONS
from runner.shapes import FLOWING, StackPlan


def make_layer(layer_cfg: dict) -> keras.layers.Layer:
    """One Keras layer from its config; Lambda functions are looked up by registered name."""
    kwargs = {}
    if "function" in layer_cfg:
        kwargs["function"] = FUNCTIONS[layer_cfg["function"]]
    if layer_cfg.get("merge_mode") == "none":
        kwargs["merge_mode"] = None  # Keras spells "two separate outputs" as None
    return instantiate(layer_cfg, _convert_="all", **kwargs)


def build_model(layers: list, plan: StackPlan, name: str) -> keras.Model:
    """The stack as a functional model whose outputs are named as the oracle names them."""
    inputs = keras.Input(shape=plan.input_shape[1:], name="inputs")
    flowing = {"output": inputs}
    states = {}
    for layer_cfg, layer_plan in zip(layers, plan.layers):
        result = make_layer(layer_cfg)(flowing["output"])
        results = list(result) if isinstance(result, (tuple, list)) else [result]
        if len(results) != len(layer_plan.outputs):
            raise StackError(
                f"model.layers.{layer_plan.index}: Keras returns {len(results)} outputs, "
                f"the shape oracle expects {len(layer_plan.outputs)} ({', '.join(layer_plan.outputs)})"
            )
        named = dict(zip(layer_plan.outputs, results))
        states.update({k: v for k, v in named.items() if k not in FLOWING})
        flowing = {k: v for k, v in named.items() if k in FLOWING}
    return keras.Model(inputs=inputs, outputs={**flowing, **states}, name=name)


def layer_output_shapes(model: keras.Model, plan: StackPlan) -> list:
    """Keras's own symbolic output shapes of each layer of the stack, named like the plan's."""
    shapes = []
    for layer, layer_plan in zip(model.layers[1:], plan.layers):
        output = layer.output
        results = list(output) if isinstance(output, (tuple, list)) else [output]
        shapes.append({k: tuple(t.shape) for k, t in zip(layer_plan.outputs, results)})
    return shapes
