"""A plain Python list with ONE example (a one-element batch), and L2 over one layer."""
import random

import numpy as np

import gradgen
from gradgen import nn

random.seed(3)
model = nn.MLP(2, [3, 1])


@gradgen.export(example=dict(X=np.zeros((1, 2)), y=np.zeros(1)))
def loss(X, y):
    losses = [(1 + -yi * model(list(row))).relu() for row, yi in zip(X, y)]
    data = sum(losses) * (1.0 / len(losses))
    reg = 1e-3 * sum(p * p for p in model.layers[1].parameters())
    return data + reg
