"""A bare Keras loop: build and predict each cell of a grid in one process, as a script would.

    python benchmarks/bare_grid.py MODELS SEQUENCES UNITS TIMESTEPS [--batch B --features D]
      e.g. python benchmarks/bare_grid.py lstm,gru false,true 3,8 10,30
Prints one JSON line per job: its index, seconds and resident memory (MiB).
"""

import argparse
import itertools
import json
import os
import time

import keras
import numpy as np

LAYERS = {"simple_rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM,
          "gru": keras.layers.GRU}


def build(model: str, units: int, sequences: bool, timesteps: int, features: int):
    inputs = keras.Input(shape=(timesteps, features))
    if model == "bilstm":
        outputs = keras.layers.Bidirectional(keras.layers.LSTM(units, return_sequences=sequences))(inputs)
    else:
        outputs = LAYERS[model](units, return_sequences=sequences)(inputs)
    return keras.Model(inputs, outputs)


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("models", "sequences", "units", "timesteps"):
        parser.add_argument(name)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--features", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1, help="run the grid this many times")
    parser.add_argument("--keep-session", action="store_true",
                        help="no keras.backend.clear_session() between jobs, as a notebook does")
    args = parser.parse_args()
    grid = list(itertools.product(
        args.models.split(","), [s == "true" for s in args.sequences.split(",")],
        [int(u) for u in args.units.split(",")], [int(t) for t in args.timesteps.split(",")]))
    job = 0
    for _ in range(args.repeat):
        for model_name, sequences, units, timesteps in grid:
            start = time.perf_counter()
            if not args.keep_session:
                keras.backend.clear_session()  # Keras's advice for a loop; a full gc.collect()
            x = np.random.default_rng(job).standard_normal((args.batch, timesteps, args.features))
            model = build(model_name, units, sequences, timesteps, args.features)
            model.predict(x.astype("float32"), verbose=0)
            print(json.dumps({"job": job, "seconds": time.perf_counter() - start,
                              "rss_mb": resident_mb()}), flush=True)
            job += 1


if __name__ == "__main__":
    main()
