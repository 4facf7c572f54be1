"""The lecture's tanh MLP on three scalar inputs, squared error against a target argument."""
import random

import gradgen
from gradgen import nn

random.seed(1)
net = nn.MLP(3, [4, 4, 1], style="lecture")


@gradgen.export(example=dict(a=2.0, b=3.0, c=-1.0, target=1.0))
def loss(a, b, c, target):
    return (net([a, b, c]) - target) ** 2
