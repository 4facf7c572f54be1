"""A one-neuron layer's weights read as a row (its output) and element by element (L2 over the weights only)."""
import random

import numpy as np

import gradgen
from gradgen import nn

random.seed(8)
model = nn.MLP(3, [1])


@gradgen.export(example=dict(X=np.ones((2, 3))))
def loss(X):
    outs = [model(list(row)) for row in X]
    data = sum(outs) * (1.0 / len(outs))
    return data + 1e-4 * sum(w * w for n in model.layers[0].neurons for w in n.w)
