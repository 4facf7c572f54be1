"""The lecture's training loss over four examples given as constants (no arguments)."""
import random

import gradgen
from gradgen import nn

random.seed(2)
model = nn.MLP(3, [4, 4, 1], style="lecture")
xs = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
ys = [1.0, -1.0, -1.0, 1.0]


@gradgen.export
def loss():
    ypred = [model(x) for x in xs]
    return sum((yout - ygt) ** 2 for ygt, yout in zip(ys, ypred))
