"""The lecture's neuron, with labels as typed in the lecture."""
import gradgen


@gradgen.export(example=dict(x1=2.0, x2=0.0, w1=-3.0, w2=1.0, b=6.8813735870195432))
def neuron(x1, x2, w1, w2, b):
    x1w1 = x1 * w1
    x1w1.label = "x1*w1"
    x2w2 = x2 * w2
    x2w2.label = "x2*w2"
    x1w1x2w2 = x1w1 + x2w2
    x1w1x2w2.label = "x1*w1 + x2*w2"
    n = x1w1x2w2 + b
    n.label = "n"
    e = (2 * n).exp()
    o = (e - 1) / (e + 1)
    o.label = "o"
    return o
