"""Hydra-configured Keras recurrent stacks, shape-checked and recorded in MLflow."""
