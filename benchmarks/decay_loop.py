"""A long chain: y = y * 0.9999 + x * 1e-6 for 5,000 steps (15,000 IR nodes).

Exercises compile time (the emitted module has ~35,000 lines) and the
iterative passes: nothing here may recurse once per node.
"""

import gradgen

STEPS = 5000


@gradgen.export(example=dict(x=1.0, y0=0.5))
def decay(x, y0):
    y = y0
    for _ in range(STEPS):
        y = y * 0.9999 + x * 1e-6
    return y
