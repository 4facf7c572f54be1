"""A wide MLP, 784-128-64-10, with a softmax cross-entropy loss: a model, not a script.

benchmarks/bench_mlp.py compiles it to time a step of MNIST-sized training
against hand-written NumPy, PyTorch and JAX (and to time the compile itself:
one example traces to ~110,000 multiply-adds before re-rolling).

The network is micrograd's (`nn.MLP`: ReLU, ReLU, linear), the loss is written
with `Value`s per example, with the targets one-hot:

    gradgen compile benchmarks/wide_mlp.py -o /tmp/wide --report
"""

import random

import numpy as np

import gradgen
from gradgen import nn

random.seed(0)
model = nn.MLP(784, [128, 64, 10])  # ReLU, ReLU, linear


def ce(x, onehot):
    """Softmax cross-entropy of one example: log(sum(exp(z))) - z[target]."""
    logits = model(x)
    s = sum(z.exp() for z in logits)
    return s.log() - sum(t * z for t, z in zip(onehot, logits))


# the example fixes the arrays' shapes; their first axis is the batch (any size)
@gradgen.export(example=dict(X=np.zeros((1, 784)), Y=np.zeros((1, 10))))
def loss(X, Y):
    return gradgen.mean(ce, X, Y)
