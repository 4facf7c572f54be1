"""Compiled f_hvp time / compiled f_grad time (export(hvp=True); target: at most 4x).

    python benchmarks/bench_hvp.py [--rounds 7] [--calls 2000]

Three models, compiled in-process (NumPy backend): the lecture's neuron (a
function of five floats), the lecture's MLP 3-4-4-1 on its four examples,
and a tanh MLP 2-16-16-1 on a batch of 100 (gradgen.mean).  f_grad and f_hvp
run interleaved in one process; the table gives medians of per-call times.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

NEURON = """
import gradgen

@gradgen.export(hvp=True)
def neuron(x1, x2, w1, w2, b):
    n = x1 * w1 + x2 * w2 + b
    return n.tanh()
"""

LECTURE = """
import random
import gradgen
from gradgen import nn

xs = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
ys = [1.0, -1.0, -1.0, 1.0]
random.seed(42)
n = nn.MLP(3, [4, 4, 1], style="lecture")


@gradgen.export(example=dict(xs=xs, ys=ys), hvp=True)
def mlp(xs, ys):
    ypred = [n(x) for x in xs]
    return sum((yout - ygt) ** 2 for ygt, yout in zip(ys, ypred))
"""

WIDE = """
import random
import numpy as np
import gradgen
from gradgen import nn

random.seed(1)
model = nn.MLP(2, [16, 16, 1], style="lecture")


def sq_err(x, yi):
    return (model(x) - yi) ** 2


@gradgen.export(example=dict(X=np.zeros((1, 2)), y=np.zeros(1)), hvp=True)
def wide(X, y):
    return gradgen.mean(sq_err, X, y)
"""


def _compile(text, stem):
    from gradgen.api import compile_file

    d = tempfile.mkdtemp(prefix="bench_hvp_")
    path = os.path.join(d, stem + ".py")
    with open(path, "w") as fh:
        fh.write(text)
    return compile_file(path)


def cases():
    rng = np.random.default_rng(0)
    m = _compile(NEURON, "neuron")
    x = [2.0, 0.0, -3.0, 1.0, 6.8813735870195432]
    yield "neuron (5 floats)", (lambda: m.neuron_grad(*x)), (lambda: m.neuron_hvp(*x, *[0.1, 0.2, 0.3, 0.4, 0.5]))
    m = _compile(LECTURE, "lecture")
    mod = m.module
    ps = _params(m)
    X = np.array([[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]])
    Y = np.array([1.0, -1.0, -1.0, 1.0])
    vs = [rng.normal(size=p.shape) for p in ps]
    yield "lecture MLP 3-4-4-1, B=4", (lambda: mod.mlp_grad(*ps, X, Y)), (lambda: mod.mlp_hvp(*ps, X, Y, *vs))
    m = _compile(WIDE, "wide")
    ps = _params(m)
    X = rng.normal(size=(100, 2))
    Y = np.tanh(X[:, 0] * X[:, 1])
    vs = [rng.normal(size=p.shape) for p in ps]
    yield "tanh MLP 2-16-16-1, B=100", (lambda: m.wide_grad(*ps, X, Y)), (lambda: m.wide_hvp(*ps, X, Y, *vs))


def _params(compiled):
    """Random arrays shaped like the compiled function's parameter inputs (timings do not depend
    on the values)."""
    g = compiled.functions[0].grad_opt
    rng = np.random.default_rng(1)
    return [rng.normal(size=g.nodes[i].shape) * 0.5 for i in g.inputs if g.nodes[i].origin.kind == "param"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=2000)
    args = ap.parse_args()
    print(f"{'model':<28} {'grad us':>9} {'hvp us':>9} {'hvp/grad':>9}")
    for name, grad, hvp in cases():
        times = {"grad": [], "hvp": []}
        n = args.calls if "neuron" in name else max(args.calls // 10, 50)
        for _ in range(args.rounds):
            for key, run in (("grad", grad), ("hvp", hvp)):
                t0 = time.perf_counter()
                for _ in range(n):
                    run()
                times[key].append((time.perf_counter() - t0) / n * 1e6)
        g, h = statistics.median(times["grad"]), statistics.median(times["hvp"])
        print(f"{name:<28} {g:9.1f} {h:9.1f} {h / g:9.2f}")


if __name__ == "__main__":
    main()
