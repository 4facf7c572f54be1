"""The lecture's tiny MLP: four examples, MLP(3, [4, 4, 1]) with tanh, squared error.

Written exactly as on the blackboard -- a Python list of predictions and
`sum((yout - ygt)**2 ...)` -- so the trace is specialised to these four
examples: re-rolling turns the per-example copies into a (4, n) batch axis,
and the compiled `loss_grad` checks that it is called with 4 examples.

    python examples/lecture_mlp.py                        # 20 steps, compiled
    python examples/lecture_mlp.py --engine interpreted   # the same on Values
"""

import argparse
import os
import random
import sys

import numpy as np

import gradgen
from gradgen import nn

xs = [
    [2.0, 3.0, -1.0],
    [3.0, -1.0, 0.5],
    [0.5, 1.0, 1.0],
    [1.0, 1.0, -1.0],
]
ys = [1.0, -1.0, -1.0, 1.0]  # desired targets

random.seed(42)
n = nn.MLP(3, [4, 4, 1], style="lecture")  # random biases, tanh in every neuron


@gradgen.export(example=dict(xs=xs, ys=ys))
def loss(xs, ys):
    ypred = [n(x) for x in xs]
    return sum((yout - ygt) ** 2 for ygt, yout in zip(ys, ypred))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--engine", choices=("compiled", "interpreted"), default="compiled")
    ap.add_argument("--lr", type=float, default=0.05)
    args = ap.parse_args(argv)

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from generated import lecture_mlp as compiled

    X, Y = np.array(xs), np.array(ys)
    params = gradgen.params.read(n)  # W0 (4, 3), b0 (4,), W1 (4, 4), b1, W2 (1, 4), b2 (1,)

    def compiled_step():
        value, grads = compiled.loss_grad(*params.values(), X, Y)
        for p, g in zip(params.values(), grads):
            p -= args.lr * g
        return value

    def interpreted_step():
        value = loss(xs, ys)
        n.zero_grad()
        value.backward()
        for p in n.parameters():
            p.data += -args.lr * p.grad
        return value.data

    step = compiled_step if args.engine == "compiled" else interpreted_step
    for k in range(args.steps):
        print(f"step {k} loss {step()}")


if __name__ == "__main__":
    main()
