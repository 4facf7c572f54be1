"""Every op gradgen knows, in small functions: exp, log, sigmoid, division, powers."""

import gradgen


@gradgen.export(example=dict(x=0.5, y=2.0))
def softplus_ratio(x, y):
    # log(1 + e^x) / y: log, exp and the engine's division (a * b**-1)
    sp = (1 + x.exp()).log()
    return sp / y


@gradgen.export(example=dict(x=0.3, w=-1.2, b=0.1))
def logistic(x, w, b):
    p = (x * w + b).sigmoid()
    return -(p.log())


@gradgen.export(example=dict(x=1.5))
def powers(x):
    return x**3 - 2 * x**2 + x**0.5 - 1 / x


@gradgen.export(example=dict(x=0.7, y=-0.2))
def smooth_step(x, y):
    t = (x - y).tanh()
    return t * t + (x * y).relu() - (y - x).relu()
