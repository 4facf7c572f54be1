"""Zero biases and an example at x = 0: every ReLU sits on its kink."""
import random

import gradgen
from gradgen import nn

random.seed(7)
layer = nn.Layer(2, 3)


@gradgen.export(example=dict(x1=0.0, x2=0.0))
def f(x1, x2):
    hs = layer([x1, x2])
    return sum(h * h for h in hs) + x1 * 0.5
