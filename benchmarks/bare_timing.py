"""A bare Keras timing loop: one LSTM stack, its first call, then warm predict_on_batch calls.

    KERAS_BACKEND=jax python benchmarks/bare_timing.py --units 64 --batch 128 --timesteps 200
Keras's backend is KERAS_BACKEND's, as Keras reads it at its import. Prints one JSON line: the
backend, the first call's seconds and the median of the timed calls.
"""

import argparse
import json
import statistics
import time

import keras
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    for name, default in (("units", 64), ("batch", 128), ("timesteps", 200), ("features", 16),
                          ("warmup", 1), ("repeats", 5)):
        parser.add_argument(f"--{name}", type=int, default=default)
    args = parser.parse_args()
    x = np.random.default_rng(0).standard_normal(
        (args.batch, args.timesteps, args.features)).astype("float32")
    inputs = keras.Input(shape=(args.timesteps, args.features))
    model = keras.Model(inputs, keras.layers.LSTM(args.units)(inputs))
    start = time.perf_counter()
    model.predict_on_batch(x)
    first = time.perf_counter() - start
    for _ in range(args.warmup):
        model.predict_on_batch(x)
    seconds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        model.predict_on_batch(x)
        seconds.append(time.perf_counter() - start)
    print(json.dumps({"backend": keras.backend.backend(), "first": first,
                      "median": statistics.median(seconds)}))


if __name__ == "__main__":
    main()
