"""A global gradgen.nn.Neuron called on scalar arguments (parameters + scalar args)."""
import random

import gradgen
from gradgen import nn

random.seed(42)
unit = nn.Neuron(2)  # ReLU, bias 0


@gradgen.export(example=dict(x1=0.5, x2=-1.0))
def f(x1, x2):
    return unit([x1, x2])
