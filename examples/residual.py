"""A residual block, written as a user's own Module: y = x + W2 relu(W1 x + b1) + b2.

The block holds its parameters as plain lists of Values (no gradgen.nn
layers); gradgen finds them by walking its attributes (`W1.3.1` ->
`W1[3, 1]`) and groups them into arrays, so the compiled `loss_grad` takes
W1 (8, 4), b1 (8,), W2 (4, 8), b2 (4,) and is matrix code:

    z1 = x @ W1.T + b1;  h1 = relu(z1);  y = x + h1 @ W2.T + b2

    python examples/residual.py                       # a few SGD steps, compiled
    python examples/residual.py --engine interpreted  # the same on Values
"""

import argparse
import os
import random
import sys

import numpy as np

import gradgen
from gradgen import Value
from gradgen.nn import Module

D, H = 4, 8  # the block's width and its hidden width


class ResidualBlock(Module):
    def __init__(self, d, h):
        self.W1 = [[Value(random.uniform(-1, 1) / d**0.5) for _ in range(d)] for _ in range(h)]
        self.b1 = [Value(0.0) for _ in range(h)]
        self.W2 = [[Value(random.uniform(-1, 1) / h**0.5) for _ in range(h)] for _ in range(d)]
        self.b2 = [Value(0.0) for _ in range(d)]

    def __call__(self, x):
        hidden = [sum((w * xi for w, xi in zip(row, x)), b).relu() for row, b in zip(self.W1, self.b1)]
        return [xi + sum((w * hj for w, hj in zip(row, hidden)), b) for xi, row, b in zip(x, self.W2, self.b2)]


random.seed(1337)
block = ResidualBlock(D, H)


def example_loss(x, t):
    """Squared error of the block's output against the target t."""
    y = block(x)
    return sum((yi - ti) ** 2 for yi, ti in zip(y, t))


@gradgen.export(example=dict(X=np.zeros((1, D)), T=np.zeros((1, D))))
def loss(X, T):
    return gradgen.mean(example_loss, X, T)


def make_data(n=16):
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (n, D))
    return X, np.tanh(X[:, ::-1])  # a target the block can learn


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--engine", choices=("compiled", "interpreted"), default="compiled")
    args = ap.parse_args(argv)
    X, T = make_data()
    lr = 0.1
    if args.engine == "compiled":
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
        from generated import residual as compiled

        params = gradgen.params.read(block)  # W1 (8, 4), b1 (8,), W2 (4, 8), b2 (4,)
        for k in range(args.steps):
            value, grads = compiled.loss_grad(*params.values(), X, T)
            for p, g in zip(params.values(), grads):
                p -= lr * g
            print(f"step {k} loss {value}")
        gradgen.params.write(block, params)
    else:
        for k in range(args.steps):
            out = loss(X, T)
            block.zero_grad()
            out.backward()
            for p in block.parameters():
                p.data -= lr * p.grad
            print(f"step {k} loss {out.data}")


if __name__ == "__main__":
    main()
