"""micrograd's demo (demo.ipynb) on micrograd's own package, compiled.

The model, the loss and the training loop are micrograd's demo.ipynb, on
micrograd's `Value` and `nn.MLP` (`pip install micrograd`); the only
changes: the loss is an exported function of the data (X, y) written with
`gradgen.mean` over the examples, so it compiles with a batch axis to the
same `loss_grad` as examples/moons.py (gradgen.nn), and the data are
arguments.  `gradgen compile examples/micrograd_demo.py -o generated`.

    python examples/micrograd_demo.py                        # 100 steps, compiled
    python examples/micrograd_demo.py --engine micrograd     # the same on micrograd's engine

Each step prints `step K loss L, accuracy A%` as the demo does; both
engines print the same numbers (to rounding).  Needs scikit-learn.
"""

import argparse
import os
import random
import sys

import numpy as np
from micrograd.engine import Value
from micrograd.nn import MLP

import gradgen

np.random.seed(1337)
random.seed(1337)

# initialize a model
model = MLP(2, [16, 16, 1])  # 2-layer neural network


def svm_loss(x, yi):
    """The max-margin loss of one example (x: a row of 2 numbers, yi: its label, +1 or -1)."""
    score = model(list(map(Value, x)))
    return (1 + -yi * score).relu()


def score_of(x):
    return model(list(map(Value, x)))


# the example fixes the arrays' shapes; their first axis is the batch (any size)
@gradgen.export(example=dict(X=np.zeros((1, 2)), y=np.zeros(1)), step=gradgen.sgd())
def loss(X, y):
    data_loss = gradgen.mean(svm_loss, X, y)
    # L2 regularization
    alpha = 1e-4
    reg_loss = alpha * sum((p * p for p in model.parameters()))
    return data_loss + reg_loss  # the demo's total_loss


@gradgen.export(example=dict(X=np.zeros((1, 2))))
def scores(X):
    return gradgen.each(score_of, X)


def demo_loss(X, y):
    """micrograd's demo loss, unchanged (full batch): (total_loss, accuracy) on micrograd's engine."""
    Xb, yb = X, y
    inputs = [list(map(Value, xrow)) for xrow in Xb]

    # forward the model to get scores
    scores = list(map(model, inputs))

    # svm "max-margin" loss
    losses = [(1 + -yi * scorei).relu() for yi, scorei in zip(yb, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    # L2 regularization
    alpha = 1e-4
    reg_loss = alpha * sum((p * p for p in model.parameters()))
    total_loss = data_loss + reg_loss

    # also get accuracy
    accuracy = [(yi > 0) == (scorei.data > 0) for yi, scorei in zip(yb, scores)]
    return total_loss, sum(accuracy) / len(accuracy)


def make_data():
    from sklearn.datasets import make_moons

    np.random.seed(1337)  # (as at the demo's top: the data do not depend on what ran before)
    X, y = make_moons(n_samples=100, noise=0.1)
    return X, y * 2 - 1  # make y be -1 or 1


def compiled_module():
    """generated/micrograd_demo.py (committed)."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from generated import micrograd_demo as compiled

    return compiled


def train(X, y, steps=100, engine="compiled", out=print):
    """micrograd's optimization loop; returns [(loss, accuracy)] per step."""
    history = []
    if engine == "compiled":
        compiled = compiled_module()
        params = gradgen.params.read(model)  # W0 (16, 2), b0 (16,), W1, b1, W2 (1, 16), b2 (1,)
    for k in range(steps):
        learning_rate = 1.0 - 0.9 * k / 100
        if engine == "compiled":
            s = compiled.scores(*params.values(), X)  # before the update, as the demo's accuracy
            total_loss = compiled.loss_step(*params.values(), X, y, learning_rate)  # sgd, in place
            acc = np.mean((y > 0) == (s > 0))
        else:
            total_loss, acc = demo_loss(X, y)
            model.zero_grad()
            total_loss.backward()
            for p in model.parameters():
                p.data -= learning_rate * p.grad
            total_loss = total_loss.data
        history.append((float(total_loss), float(acc)))
        out(f"step {k} loss {total_loss}, accuracy {acc*100}%")
    if engine == "compiled":
        gradgen.params.write(model, params)
    return history


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--engine", choices=("compiled", "micrograd"), default="compiled")
    args = ap.parse_args(argv)
    X, y = make_data()
    train(X, y, args.steps, args.engine)


if __name__ == "__main__":
    main()
