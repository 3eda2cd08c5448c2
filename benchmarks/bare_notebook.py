"""The notebook's cells as a plain Keras script, written as the notebook writes them."""

import warnings

import numpy as np
import tensorflow as tf
from tensorflow.keras.layers import LSTM, Bidirectional, Dense, Input, Lambda, SimpleRNN
from tensorflow.keras.models import Model, Sequential

warnings.filterwarnings("ignore")

B = 4  # batch size
T = 30  # time steps
D = 1  # features
U = 3  # LSTM units

X = np.random.randn(B, T, D)


def simple_RNN(return_sequences=False):
    inp = Input(shape=(T, D))
    out = SimpleRNN(U, return_sequences=return_sequences)(inp)
    model = Model(inputs=inp, outputs=out)
    return model.predict(X)


def lstm(return_sequences=False):
    inp = Input(shape=(T, D))
    out = LSTM(U, return_sequences=return_sequences)(inp)
    model = Model(inputs=inp, outputs=out)
    return model.predict(X)


def bi_lstm(return_sequences=False):
    inp = Input(shape=(T, D))
    out = Bidirectional(LSTM(U, return_sequences=return_sequences))(inp)
    model = Model(inputs=inp, outputs=out)
    return model.predict(X)


def lambda_lstm(return_sequences=False):
    model = Sequential([
        Lambda(lambda x: tf.expand_dims(x, axis=-1), input_shape=[None]),
        LSTM(20, return_sequences=True),
        LSTM(20, return_sequences=return_sequences),
        Dense(1),
        Lambda(lambda x: x * 100.0),
    ])
    return model.predict(np.random.randn(B, T) * 100)


for cell in (simple_RNN, lstm, bi_lstm, lambda_lstm):
    for return_sequences in (False, True):
        print(cell.__name__, return_sequences, cell(return_sequences=return_sequences).shape)
