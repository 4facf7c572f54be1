"""An RNN cell, unrolled over T = 4 steps: h_t = tanh(Wx x_t + Wh h_{t-1} + b).

The cell is a user's own Module holding lists of Values; the loss reads the
last state through a linear readout.  gradgen groups the cell's Values
into arrays Wx (8, 3), Wh (8, 8), b (8,), wo (8,), bo (a scalar) and each step's
sum of two dot rows and a bias re-rolls to `x_t @ Wx.T + h @ Wh.T + b`.

    python examples/rnn_cell.py                       # a few SGD steps, compiled
    python examples/rnn_cell.py --engine interpreted  # the same on Values
"""

import argparse
import os
import random
import sys

import numpy as np

import gradgen
from gradgen import Value
from gradgen.nn import Module

D, H, T = 3, 8, 4  # input width, state width, steps


class RNNCell(Module):
    def __init__(self, d, h):
        self.Wx = [[Value(random.uniform(-1, 1) / d**0.5) for _ in range(d)] for _ in range(h)]
        self.Wh = [[Value(random.uniform(-1, 1) / h**0.5) for _ in range(h)] for _ in range(h)]
        self.b = [Value(0.0) for _ in range(h)]
        self.wo = [Value(random.uniform(-1, 1) / h**0.5) for _ in range(h)]
        self.bo = Value(0.0)

    def step(self, x, h):
        """The next state: tanh(b + Wx x + Wh h), one unit at a time."""
        return [
            (bi + sum(w * xk for w, xk in zip(wx, x)) + sum(w * hj for w, hj in zip(wh, h))).tanh()
            for wx, wh, bi in zip(self.Wx, self.Wh, self.b)
        ]

    def __call__(self, xs):
        h = [(bi + sum(w * xk for w, xk in zip(wx, xs[0]))).tanh() for wx, bi in zip(self.Wx, self.b)]  # h_0 = 0
        for x in xs[1:]:
            h = self.step(x, h)
        return sum((w * hj for w, hj in zip(self.wo, h)), self.bo)


random.seed(1337)
cell = RNNCell(D, H)


def sequence_loss(xs, y):
    """Squared error of the readout of the last state."""
    return (cell(xs) - y) ** 2


@gradgen.export(example=dict(X=np.zeros((1, T, D)), y=np.zeros(1)))
def loss(X, y):
    return gradgen.mean(sequence_loss, X, y)


def make_data(n=16):
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (n, T, D))
    return X, X[:, :, 0].sum(axis=1) / T  # the mean of the first input


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--engine", choices=("compiled", "interpreted"), default="compiled")
    args = ap.parse_args(argv)
    X, y = make_data()
    lr = 0.1
    if args.engine == "compiled":
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
        from generated import rnn_cell as compiled

        params = gradgen.params.read(cell)  # Wx (8, 3), Wh (8, 8), b (8,), wo (8,), bo ()
        for k in range(args.steps):
            value, grads = compiled.loss_grad(*params.values(), X, y)
            for name, g in zip(params, grads):
                params[name] = params[name] - lr * g
            print(f"step {k} loss {value}")
        gradgen.params.write(cell, params)
    else:
        for k in range(args.steps):
            out = loss(X, y)
            cell.zero_grad()
            out.backward()
            for p in cell.parameters():
                p.data -= lr * p.grad
            print(f"step {k} loss {out.data}")


if __name__ == "__main__":
    main()
