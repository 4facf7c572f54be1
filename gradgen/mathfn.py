"""Scalar maths shared by the interpreted engine, the IR interpreter and emitted code.

Each function here is the single definition of an op's float semantics.  The
emitter copies `sigmoid`'s source into generated modules that use it, so the
engine, the IR interpreter and compiled code agree bit for bit.
"""

import math


def relu(x):
    # max(x, 0.0) returns x unless 0.0 > x: NaN and -0.0 pass through unchanged.
    return max(x, 0.0)


def sigmoid(x):
    """Logistic function, written so that no branch overflows."""
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def step(x):
    """1.0 where x > 0 else 0.0 (relu's local derivative, micrograd's `out.data > 0`)."""
    return float(x > 0.0)


def np_sigmoid(x):
    """`sigmoid` on a NumPy array, elementwise, with the same two branches."""
    import numpy as np

    e = np.exp(-np.abs(x))
    return np.where(x >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))


def sign(x):
    """1.0, -1.0 or 0.0 (at 0, -0.0 and NaN): a local derivative, as the engine computes it."""
    return float(x > 0.0) - float(x < 0.0)
