"""The two expressions of micrograd's test/test_engine.py, as functions.

micrograd's README gives the numbers for `more_ops` at a=-4, b=2:
g = 24.7041, dg/da = 138.8338, dg/db = 645.5773.
"""

import gradgen


@gradgen.export(example=dict(x=-4.0))
def sanity_check(x):
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    y = h + q + q * x
    return y


@gradgen.export(example=dict(a=-4.0, b=2.0))
def more_ops(a, b):
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    return g
