"""Every operator and method once, with fan-out."""
import gradgen


@gradgen.export(example=dict(a=0.8, b=1.3))
def f(a, b):
    c = a * b + a / b - b ** 3 + (-a)
    d = c.tanh() + c.exp() * 0.1 + (b * b).log() + c.relu() + c.sigmoid()
    return d * c - a ** 0.5
