"""An MLP on a batch whose first layer has dead units (large negative biases) and zero inputs."""
import random

import numpy as np

import gradgen
from gradgen import nn

random.seed(5)
model = nn.MLP(2, [4, 1])
for n in model.layers[0].neurons[:2]:
    n.b.data = -50.0


def sq(x, yi):
    return (model(x) - yi) ** 2


@gradgen.export(example=dict(X=np.zeros((3, 2)), y=np.zeros(3)))
def loss(X, y):
    return gradgen.mean(sq, X, y)
