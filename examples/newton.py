"""Newton's method for logistic regression: three weights, eight points, a handful of steps.

The loss is the mean logistic loss -log(sigmoid(y * (w0 + w1*x1 + w2*x2)))
over eight fixed points (not separable) plus a small L2 term, a smooth and
strictly convex function of the three weights.  `hessian=True` makes
`gradgen compile` emit `loss_hessian(w0, w1, w2) -> (value, gradient, H)`,
readable second-derivative code (generated/newton.py); each Newton step
solves H d = -g and takes w + d.

    python examples/newton.py        # |grad| per step: quadratic convergence
"""

import os
import sys

import gradgen

POINTS = [
    (0.5, 1.5, 1.0),
    (1.0, 0.5, 1.0),
    (2.0, 1.0, 1.0),
    (1.5, -0.5, -1.0),
    (-0.5, -1.0, -1.0),
    (-1.0, 0.5, -1.0),
    (0.0, -1.5, -1.0),
    (0.2, 0.8, -1.0),  # on the wrong side: the data are not separable
]
L2 = 0.05


@gradgen.export(example=dict(w0=0.0, w1=0.0, w2=0.0), hessian=True)
def loss(w0, w1, w2):
    data = 0.0
    for x1, x2, y in POINTS:
        margin = (w0 + w1 * x1 + w2 * x2) * y
        data = data - margin.sigmoid().log()
    return data * (1.0 / len(POINTS)) + L2 * (w1 * w1 + w2 * w2)


def newton(hessian, w, steps=10, tol=1e-12):
    """Newton's method with a compiled `hessian`; prints |grad| per step, returns the weights."""
    import numpy as np

    w = np.array(w, dtype=float)
    for k in range(steps):
        value, g, H = hessian(*w)
        norm = float(np.linalg.norm(g))
        print(f"step {k}: loss = {value:.12f}  |grad| = {norm:.3e}")
        if norm < tol:
            break
        w = w - np.linalg.solve(np.array(H), np.array(g))
    return w


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from generated import newton as compiled

    w = newton(compiled.loss_hessian, [0.0, 0.0, 0.0])
    print("weights:", ", ".join(f"{x:.6f}" for x in w))
