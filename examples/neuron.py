"""The lecture's neuron: o = tanh(x1*w1 + x2*w2 + b).

b = 6.8813735870195432 makes n = 0.8814 and o = 1/sqrt(2), so d(o)/d(n) = 0.5.
"""

import gradgen

# The lecture's point.  (Its PyTorch cell rounds b through float32: see README.)
LECTURE_POINT = dict(x1=2.0, x2=0.0, w1=-3.0, w2=1.0, b=6.8813735870195432)


@gradgen.export(example=LECTURE_POINT)
def neuron(x1, x2, w1, w2, b):
    x1w1 = x1 * w1
    x2w2 = x2 * w2
    x1w1x2w2 = x1w1 + x2w2
    n = x1w1x2w2 + b
    o = n.tanh()
    return o


if __name__ == "__main__":
    # Run the compiled module next to the interpreted engine.
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from generated import neuron as compiled

    point = dict(LECTURE_POINT, b=6.881373405456543)  # b as the lecture's PyTorch saw it
    o, grads = compiled.neuron_grad(**point)
    print(f"compiled:    o = {o!r}")
    for name, g in zip(point, grads):
        print(f"  d(o)/d({name}) = {g!r}")

    leaves = {k: gradgen.Value(v, label=k) for k, v in point.items()}
    out = neuron(**leaves)
    out.backward()
    print(f"interpreted: o = {out.data!r}")
    for name, v in leaves.items():
        print(f"  d(o)/d({name}) = {v.grad!r}")
