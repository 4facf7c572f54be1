"""micrograd's demo (demo.ipynb), compiled: a 2-16-16-1 MLP learns the two moons.

The model and loss are written with Values exactly as in micrograd's demo;
`gradgen compile examples/moons.py` turns `loss` into generated/moons.py,
whose `loss_grad` is a few lines of matrix code per layer.

    python examples/moons.py                        # 100 steps on the compiled module
    python examples/moons.py --engine interpreted   # the same on micrograd-style Values
    python examples/moons.py --steps 20 --batch-size 32 --plot boundary.png

Each step prints `step K loss L, accuracy A%` as micrograd's demo does
(step 0 loss 0.8958441028683222, accuracy 50.0%); both engines print the
same numbers (to rounding: the compiled sums run in another order).
Needs scikit-learn (the data), matplotlib (the plot) and tqdm (the
--progress bar, drawn only when stderr is a terminal):
`pip install -e ".[examples]"` (`--backend numba`: also ".[numba]").
"""

import argparse
import os
import random
import sys

import numpy as np

import gradgen
from gradgen import nn

random.seed(1337)
model = nn.MLP(2, [16, 16, 1])  # 2-layer neural network: ReLU, ReLU, linear


def svm_loss(x, yi):
    """The max-margin loss of one example (x: 2 Values, yi: the label, +1 or -1)."""
    score = model(x)
    return (1 + -yi * score).relu()


def score_of(x):
    return model(x)


# the example fixes the arrays' shapes; their first axis is the batch (any size)
@gradgen.export(example=dict(X=np.zeros((1, 2)), y=np.zeros(1)), step=gradgen.sgd())
def loss(X, y):
    data_loss = gradgen.mean(svm_loss, X, y)
    alpha = 1e-4
    reg_loss = alpha * sum(p * p for p in model.parameters())
    return data_loss + reg_loss


@gradgen.export(example=dict(X=np.zeros((1, 2))))
def scores(X):
    return gradgen.each(score_of, X)


def make_data():
    from sklearn.datasets import make_moons

    np.random.seed(1337)
    random.seed(1337)
    X, y = make_moons(n_samples=100, noise=0.1)
    return X, (y * 2 - 1).astype(np.float64)  # make y be -1 or 1


def compiled_module(backend="numpy"):
    """generated/moons.py (committed, kept up to date by CI); for another backend, this
    file compiled now (in memory) with it."""
    if backend != "numpy":
        return gradgen.compile_file(os.path.abspath(__file__), backend=backend).module
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, root)
    from generated import moons as compiled

    return compiled


def batches(X, y, batch_size):
    def batch(k):
        if batch_size is None:
            return X, y
        ri = np.random.permutation(X.shape[0])[:batch_size]  # micrograd's minibatch draw
        return X[ri], y[ri]

    return batch


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--engine", choices=("compiled", "interpreted"), default="compiled")
    ap.add_argument(
        "--backend", choices=("numpy", "numba"), default="numpy", help="the compiled module's backend (default numpy)"
    )
    ap.add_argument("--batch-size", type=int, default=None, help="fixed-size minibatches (default: full batch)")
    ap.add_argument("--plot", default="moons.png", help="where to save the decision boundary ('' for none)")
    ap.add_argument("--progress", action="store_true", help="show a progress line on stderr")
    args = ap.parse_args(argv)

    X, y = make_data()
    batch = batches(X, y, args.batch_size)
    params = gradgen.params.read(model)  # W0 (16, 2), b0 (16,), W1, b1, W2 (1, 16), b2 (1,)
    compiled = compiled_module(args.backend)

    def compiled_step(Xb, yb, lr):
        s = compiled.scores(*params.values(), Xb)  # before the update, as the loss
        total_loss = compiled.loss_step(*params.values(), Xb, yb, lr)  # sgd, in place
        return total_loss, np.mean((yb > 0) == (s > 0))

    def interpreted_step(Xb, yb, lr):
        total_loss = loss(Xb, yb)
        s = scores(Xb)
        model.zero_grad()
        total_loss.backward()
        for p in model.parameters():
            p.data -= lr * p.grad  # sgd
        return total_loss.data, np.mean([(yi > 0) == (si.data > 0) for yi, si in zip(yb, s)])

    step = compiled_step if args.engine == "compiled" else interpreted_step
    bar = progress_bar(args.steps, args.progress)
    for k in range(args.steps):
        Xb, yb = batch(k)
        learning_rate = 1.0 - 0.9 * k / 100
        total_loss, acc = step(Xb, yb, learning_rate)
        bar.write(f"step {k} loss {total_loss}, accuracy {acc*100}%")
        bar.update()
    bar.close()
    if args.engine == "interpreted":
        params = gradgen.params.read(model)
    else:
        gradgen.params.write(model, params)
    if args.plot:
        plot(compiled, params, X, y, args.plot)
        print(f"decision boundary saved to {args.plot}")


class NoBar:
    """What `progress_bar` returns without a bar: the step lines go to stdout as they are."""

    def write(self, line):
        print(line)

    def update(self):
        pass

    def close(self):
        pass


def progress_bar(steps, wanted):
    """A tqdm bar on stderr, only when asked for and stderr is a terminal (no escape codes in logs)."""
    if not wanted or not sys.stderr.isatty():
        return NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        print("--progress needs tqdm: pip install tqdm", file=sys.stderr)
        return NoBar()

    bar = tqdm(total=steps, unit="step", file=sys.stderr, dynamic_ncols=True)
    bar.write = lambda line: tqdm.write(line, file=sys.stdout)  # clears the bar, prints, redraws it
    return bar


def plot(compiled, params, X, y, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = 0.25
    x_min, x_max = X[:, 0].min() - 1, X[:, 0].max() + 1
    y_min, y_max = X[:, 1].min() - 1, X[:, 1].max() + 1
    xx, yy = np.meshgrid(np.arange(x_min, x_max, h), np.arange(y_min, y_max, h))
    Xmesh = np.c_[xx.ravel(), yy.ravel()]
    Z = (compiled.scores(*params.values(), Xmesh) > 0).reshape(xx.shape)
    fig = plt.figure()
    plt.contourf(xx, yy, Z, cmap=plt.cm.Spectral, alpha=0.8)
    plt.scatter(X[:, 0], X[:, 1], c=y, s=40, cmap=plt.cm.Spectral)
    plt.xlim(xx.min(), xx.max())
    plt.ylim(yy.min(), yy.max())
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    main()
